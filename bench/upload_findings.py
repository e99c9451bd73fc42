"""The upload latency section's fixed part: what the profiles showed and what changed because of
them, with the figures measured before the changes (the table above the findings is the run
after them). Profiles: `python -m bench.upload_profile idle|saturated|sync` (py-spy on the
server, and the CPU time of every process of the stack); the waits, which a sampling profiler
does not show, were timed with timers around each step of an upload, added for the
measurement and not kept. All on 2026-12-02 under the CPU lock, with other work on the machine
(load average 5 to 10)."""

from __future__ import annotations

FINDINGS = [
    "What limits it (measured on 2026-12-02 with other work on the machine, load average 5"
    " to 10; `python -m bench.upload_profile idle|saturated|sync` runs a phase with py-spy"
    " sampling the server at 200 Hz and prints each process's CPU time per upload):",
    "",
    "- CPU. Eight clients that send their next upload as soon as one is answered keep both"
    " cores busy, so an upload's latency is mostly its wait for a share of them. An"
    " asynchronous upload costs about 52 ms of CPU in the stack's processes: rclone serve"
    " s3 storing the original 22.5 ms, the upload service 20 ms, the clients 5.6 ms, an"
    " outbox relay 2.4 ms, the notifier 1.2 ms (PostgreSQL and RabbitMQ come on top; the"
    " machine as a whole was busy 108 ms per upload, the rest being other work). The upload"
    " service's samples: the minio client's put 23% (its SHA-256 of the body, signed over"
    " plain HTTP, 9%; sending 5%), receiving the gRPC chunks 11%, writes to the PostgreSQL"
    " and RabbitMQ sockets 11%, spooling the received bytes (a temporary file past 1 MiB)"
    " 9%, the event loop's epoll 17%; no frame of thumbwire's own code above 1%.",
    "- The workspace's event lock (a wait, found by timing each step of the upload's"
    " transaction). Every event write takes a per-workspace advisory lock held until its"
    " commit, so that event ids follow commit order; all uploads and thumbnails of a"
    " workspace queue for it, and the benchmark's clients all write to one workspace. The"
    " upload held it over six round trips (the lock, the event, the event's outbox row and"
    " its notify, the job's outbox row and its notify) and the commit; under CPU contention"
    " each round trip waits for the process to be scheduled. The event step took 40 ms on"
    " average idle and 105 ms saturated (p90 285 ms), as the thumbnailer's two event writes"
    " per photo joined the queue. Now the upload queues its job before its event, an outbox"
    " row and its notify are one statement, and the lock and the event row are one (the id"
    " is still drawn under the lock): two round trips and the commit. With the first two of"
    " these: 3 ms idle, 35 ms saturated (p90 97 ms).",
    "- Sync against async: a synchronous upload costs about 200 ms of CPU (the render"
    " workers and the server 156 ms, rclone 28 ms for the original and the three"
    " thumbnails), so on a machine whose cores are all busy the ratio of the p50s stays near"
    " the ratio of the CPU costs, about 4x. 5x needs the asynchronous upload under about"
    " 37 ms of CPU; its largest part is the embedded S3 server, a stand-in that a"
    " deployment runs on other machines.",
    "- Saturated against idle (profiled: p50 526 ms against 376 ms idle, the machine busy"
    " 151 ms per upload against 108, the thumbnailer 22 ms of it): the thumbnailer takes CPU"
    " (its render workers, and its reads and writes through the same rclone, PostgreSQL and"
    " RabbitMQ) and, before the change above, the event lock. Its render workers now run at"
    " a lower priority (THUMBWIRE_RENDER_NICE, 10 by default; the table's third row is the"
    " same thumbnailer with 0), so they yield the CPU to the upload path; the shared servers"
    " do not: the S3 server and the database serve both at one priority, and the workers"
    " still take the cycles that the upload path leaves between its requests, with the"
    " caches and memory bandwidth that go with them.",
    "",
    "Changed, and the figures before:",
    "",
    "- services/core/storage.py: S3 calls run in a thread pool of the object store's own, as"
    " large as its connection pool, no longer in the event loop's default executor (6"
    " threads on 2 cores), where eight concurrent uploads queued for a thread and the"
    " upload's header check (asyncio.to_thread) queued behind their puts. Timed, 3 rounds"
    " each back to back: the header check 20.3 ms on average before, 4.8 ms after; the p50s"
    " did not move beyond the noise (the time went to the put itself: the machine's limit"
    " is CPU).",
    "- services/upload/catalogue.py, services/core/outbox.py, services/core/events.py: the"
    " event lock held over two round trips instead of six, as above. The upload's wait for"
    " the lock shrank, but the ratios did not follow: in the run of 2026-12-02 04:39 UTC"
    " (the table above, after every change, load average about 3), saturated against idle"
    " is 1.55x at p50, as before (1.57x, load average about 5.7). With the thumbnailer busy,"
    " the upload path waits for the CPU instead.",
    "- services/thumbnailer (THUMBWIRE_RENDER_NICE): the render workers at nice 10. Measured"
    " side by side in the table above (third row: nice 0); in the first run with it"
    " (2026-12-02 04:46 UTC, load average about 5), saturated against idle at p50 was 1.65x"
    " against 1.83x at nice 0.",
    "",
    "The last full run before the event lock changes (2026-12-02 04:22 UTC, load average"
    " 5.5 to 5.9, the same method):",
    "",
    "| upload | thumbnailer | p50 ms | p99 ms | uploads/s |",
    "|---|---|---|---|---|",
    "| async | idle (workers stopped) | 218 | 489 | 31.3 |",
    "| async | saturated | 342 | 910 | 19.9 |",
    "| async | saturated, the thumbnailer under `nice -n 10` | 337 | 754 | 21.2 |",
    "| sync baseline | idle; renders in the call | 977 | 1770 | 7.3 |",
    "",
    "Saturated against idle then: p50 1.57x, p99 1.86x (at nice 10: 1.55x, 1.54x); async"
    " against sync at p50: 4.5x idle, 2.9x saturated. Before the storage change (3 rounds,"
    " three phases, load average 7 to 8): idle 311 / 740 ms, saturated 367 / 699 ms, sync"
    " 1153 / 1747 ms.",
]
