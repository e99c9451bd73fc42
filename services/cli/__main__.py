def main() -> None:
    raise SystemExit("thumbwire: no commands yet")
