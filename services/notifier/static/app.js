// The thumbwire demo page: upload photos through the gateway's REST facade and watch their
// thumbnails arrive live over SSE. Photos come in one JSON shape from both (photo_to_json).
import { base64ToBytes, thumbHashToDataURL } from "/static/thumbhash.js";

const SESSION_KEY = "thumbwire.session";
const PHOTO_EVENTS = [
  "photo.uploaded",
  "photo.thumbnail_processing",
  "photo.thumbnail_retrying",
  "photo.thumbnail_ready",
  "photo.thumbnail_failed",
  "photo.deleted",
];
const REOPEN_DELAY_MS = 2000;
const CARD_SIZE = "medium";
const $ = (selector) => document.querySelector(selector);

const state = {
  session: null, // { token, workspace, item }
  photos: new Map(), // photo id -> the newest photo JSON seen
  cards: new Map(), // photo id (or a local key while uploading) -> <li>
  deleted: new Set(), // ids never to show again, whatever arrives late
  lastEventId: 0,
  source: null,
  reopenTimer: 0,
  localCount: 0,
};

// --- session: token, workspace and item from the URL fragment or localStorage ---------------

function readSession() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token") && fragment.get("workspace")) {
    const session = {
      token: fragment.get("token"),
      workspace: fragment.get("workspace"),
      item: fragment.get("item") || "item-1",
    };
    localStorage.setItem(SESSION_KEY, JSON.stringify(session));
    history.replaceState(null, "", location.pathname); // the token leaves the address bar
    return session;
  }
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
  } catch {
    return null;
  }
}

function showSessionForm(message) {
  disconnect();
  const form = $("#session");
  const session = state.session || {};
  form.workspace.value = session.workspace || "";
  form.item.value = session.item || "item-1";
  form.token.value = session.token || "";
  form.hidden = false;
  $("#app").hidden = true;
  $("#change-session").hidden = true;
  notify(message || "");
}

function saveSessionForm(event) {
  event.preventDefault();
  const form = event.target;
  state.session = {
    workspace: form.workspace.value.trim(),
    item: form.item.value.trim(),
    token: form.token.value.trim(),
  };
  localStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
  start();
}

// --- the REST facade ------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const { workspace, token } = state.session;
  const response = await fetch(`/v1/workspaces/${encodeURIComponent(workspace)}${path}`, {
    method,
    body,
    headers: { Authorization: `Bearer ${token}` },
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    throw new ApiError(response.status, error.code, error.message || response.statusText);
  }
  return data;
}

async function fetchAllPhotos() {
  const photos = [];
  let token = "";
  do {
    const query = new URLSearchParams({ page_size: "100", page_token: token });
    const page = await api("GET", `/photos?${query}`);
    photos.push(...page.photos);
    token = page.next_page_token;
  } while (token);
  return photos;
}

// Shows the listed photos, and drops those we knew before asking that the list no longer has
// (deleted). One first seen while the list was on its way is newer than the list: it stays.
async function reloadPhotos() {
  const knownBefore = [...state.photos.keys()];
  try {
    const photos = await fetchAllPhotos();
    const listed = new Set(photos.map((photo) => photo.id));
    knownBefore.filter((id) => !listed.has(id)).forEach(removePhoto);
    photos.forEach(showPhoto);
  } catch (error) {
    handleApiError(error);
  }
}

function handleApiError(error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    showSessionForm(`The gateway refused the token: ${error.message}`);
  } else {
    notify(error.message);
  }
}

// --- live events over SSE ---------------------------------------------------------------------

// EventSource reconnects by itself after a lost connection, sending Last-Event-ID, so the
// gateway replays what was missed. It gives up only on an HTTP error (e.g. a 503 while the
// gateway starts); then a new one resumes from the last id through the query parameter.
function openStream() {
  disconnect();
  const { workspace, token } = state.session;
  const query = new URLSearchParams({ access_token: token });
  if (state.lastEventId) query.set("last_event_id", String(state.lastEventId));
  const source = new EventSource(`/v1/workspaces/${encodeURIComponent(workspace)}/events?${query}`);
  source.onopen = () => {
    setConnection("live");
    // Without a resume point, whatever happened before this subscription is in the list only.
    if (!state.lastEventId) reloadPhotos();
  };
  source.onerror = () => {
    setConnection("reconnecting");
    if (source.readyState === EventSource.CLOSED) {
      state.reopenTimer = setTimeout(openStream, REOPEN_DELAY_MS);
      // EventSource hides the status; a refused token shows here, and asks for another.
      api("GET", "/photos?page_size=1").catch((error) => {
        if (error instanceof ApiError) handleApiError(error);
      });
    }
  };
  PHOTO_EVENTS.forEach((type) => source.addEventListener(type, onPhotoEvent));
  source.addEventListener("stream.reset", onStreamReset);
  state.source = source;
}

function disconnect() {
  clearTimeout(state.reopenTimer);
  if (state.source) state.source.close();
  state.source = null;
  setConnection("offline");
}

function onPhotoEvent(event) {
  state.lastEventId = Number(event.lastEventId);
  const data = JSON.parse(event.data);
  if (event.type === "photo.deleted") {
    removePhoto(data.photo_id);
  } else if (data.photo) {
    showPhoto(data.photo);
  }
}

// The events after our resume point were pruned: what we show may be stale, so refetch.
function onStreamReset(event) {
  state.lastEventId = Number(event.lastEventId);
  reloadPhotos();
}

function setConnection(name) {
  const badge = $("#connection");
  badge.dataset.state = name;
  badge.textContent = name;
}

// --- cards ------------------------------------------------------------------------------------

// Events and REST answers may arrive out of order: an older state never replaces a newer one.
function showPhoto(photo) {
  if (state.deleted.has(photo.id)) return;
  const known = state.photos.get(photo.id);
  if (known && Date.parse(known.updated_at) > Date.parse(photo.updated_at)) return;
  state.photos.set(photo.id, photo);
  renderCard(cardFor(photo.id), photo);
}

function removePhoto(id) {
  state.deleted.add(id);
  state.photos.delete(id);
  state.cards.get(id)?.remove();
  state.cards.delete(id);
}

function cardFor(key) {
  let card = state.cards.get(key);
  if (!card) {
    card = $("#card").content.firstElementChild.cloneNode(true);
    card.querySelector(".thumb").addEventListener("load", (e) => e.target.classList.add("loaded"));
    card.querySelector(".retry").addEventListener("click", () => retry(card.dataset.photoId));
    card.querySelector(".delete").addEventListener("click", () => remove(card.dataset.photoId));
    $("#photos").prepend(card);
    state.cards.set(key, card);
  }
  return card;
}

function renderCard(card, photo) {
  card.dataset.photoId = photo.id;
  card.dataset.status = photo.thumbnail_status;
  card.querySelector(".name").textContent = photo.filename || photo.id;
  card.querySelector(".name").title = photo.caption || photo.filename;
  card.querySelector(".status").textContent = statusText(photo);
  card.querySelector(".error").textContent =
    photo.thumbnail_status === "failed" ? photo.thumbnail_error || "failed" : "";
  if (photo.width && photo.height) {
    card.querySelector(".frame").style.aspectRatio = `${photo.width} / ${photo.height}`;
  }
  showPlaceholder(card.querySelector(".placeholder"), photo.placeholder);
  const thumbnail = photo.thumbnails.find((t) => t.size === CARD_SIZE);
  if (thumbnail) {
    const img = card.querySelector(".thumb");
    img.alt = photo.caption || photo.filename;
    showThumbnail(img, thumbnail.url);
  }
}

function statusText(photo) {
  const { thumbnail_status: status, thumbnail_attempts: attempts } = photo;
  if (status === "complete") return "ready";
  if (status === "pending" && attempts > 0) return `retrying (attempt ${attempts + 1})`;
  return status;
}

function showPlaceholder(img, placeholder) {
  if (!placeholder || img.dataset.hash === placeholder) return;
  img.dataset.hash = placeholder;
  img.src = thumbHashToDataURL(base64ToBytes(placeholder));
}

// <img> cannot send a header: the token goes in the query, as the gateway accepts.
function showThumbnail(img, url) {
  const src = `${url}?access_token=${encodeURIComponent(state.session.token)}`;
  if (img.getAttribute("src") !== src) img.src = src;
}

// --- actions ----------------------------------------------------------------------------------

async function upload(file) {
  const key = `local-${++state.localCount}`;
  const card = cardFor(key);
  renderCard(card, { id: "", filename: file.name, thumbnail_status: "uploading", thumbnails: [] });
  const form = new FormData();
  form.append("photo", file, file.name);
  try {
    const photo = await api("POST", `/items/${encodeURIComponent(state.session.item)}/photos`, form);
    state.cards.delete(key);
    if (state.cards.has(photo.id)) {
      card.remove(); // its events came first and made it a card of its own
    } else {
      state.cards.set(photo.id, card);
    }
    showPhoto(photo);
  } catch (error) {
    // Not a photo of the workspace: nothing to retry or delete there, only to dismiss.
    card.dataset.status = "rejected";
    card.querySelector(".status").textContent = "not uploaded";
    card.querySelector(".error").textContent = error.message;
    const dismiss = card.querySelector(".delete");
    dismiss.textContent = "Dismiss";
    dismiss.onclick = () => {
      card.remove();
      state.cards.delete(key);
    };
    if (error instanceof ApiError && [401, 403].includes(error.status)) handleApiError(error);
  }
}

async function retry(id) {
  try {
    showPhoto(await api("POST", `/photos/${id}/retry`));
  } catch (error) {
    handleApiError(error);
  }
}

async function remove(id) {
  if (!id) return;
  try {
    await api("DELETE", `/photos/${id}`);
    removePhoto(id);
  } catch (error) {
    handleApiError(error);
  }
}

function uploadAll(files) {
  notify("");
  [...files].forEach(upload);
}

function wireDropZone() {
  const drop = $("#drop");
  $("#files").addEventListener("change", (event) => {
    uploadAll(event.target.files);
    event.target.value = "";
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    uploadAll(event.dataTransfer.files);
  });
}

function notify(text) {
  $("#notice").textContent = text;
}

// --- start ------------------------------------------------------------------------------------

function start() {
  const { workspace, item } = state.session;
  $("#session").hidden = true;
  $("#app").hidden = false;
  $("#change-session").hidden = false;
  $("#where").textContent = `workspace ${workspace}, uploads to item ${item}`;
  state.photos.clear();
  state.cards.forEach((card) => card.remove());
  state.cards.clear();
  state.lastEventId = 0;
  // Listed once subscribed (onopen): nothing that happens in between is missed, and whichever
  // of the two reports a photo later, the newer state wins (showPhoto).
  openStream();
}

function main() {
  $("#session").addEventListener("submit", saveSessionForm);
  $("#change-session").addEventListener("click", () => showSessionForm());
  wireDropZone();
  state.session = readSession();
  if (state.session?.token && state.session?.workspace) {
    start();
  } else {
    showSessionForm();
  }
}

main();
