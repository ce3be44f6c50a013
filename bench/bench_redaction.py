"""Benchmark of redaction on its hot paths, with same-run baselines.

    .venv/bin/python bench/bench_redaction.py [--output bench/results/redaction.md]

Prints a markdown table. Each ratio compares two measurements taken in this run on this
machine (alternating rounds, the best of each), so a busy machine slows both sides. Rows:

1. redacting 1 MiB of block output (log-like lines, no secret in it) with 20 known secrets
   of 32 characters, against a plain ``str.replace`` loop over the 20 values (the naive
   redactor, which catches none of the encodings), and its throughput;
2. the same 1 MiB with 100 secrets in it, raw, base64 (split over lines too), hex and
   URL-encoded;
3. streaming a model's 64 KiB reply in 16-character chunks through the stream redactor,
   per chunk, against redacting the whole reply once when it is complete;
4. redacting a 32 KiB prompt (each model call redacts its prompt once more).
"""

from __future__ import annotations

import argparse
import base64
import platform
import random
import string
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.redaction import Redactor  # noqa: E402

MIB = 1 << 20
WORDS = [
    "disk",
    "usage",
    "error",
    "warning",
    "/var/log/syslog",
    "connection",
    "refused",
    "12345",
    "ok",
    "GET",
    "/api/v1/status",
    "200",
    "ms",
    "user=alice",
    "pid=4242",
]


def best(fn: Callable[[], object], *, rounds: int) -> float:
    """The fastest of ``rounds`` runs of ``fn``, in seconds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def pair(
    fn: Callable[[], object], baseline: Callable[[], object], *, rounds: int
) -> tuple[float, float]:
    """``fn`` and ``baseline`` measured in alternating rounds: the best of each."""
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(best(fn, rounds=1))
        theirs.append(best(baseline, rounds=1))
    return min(ours), min(theirs)


def output(size: int, rng: random.Random) -> str:
    """Log-like lines of about ``size`` characters."""
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choices(WORDS, k=10)) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines)


def with_secrets(text: str, secrets: list[str], rng: random.Random, *, count: int) -> str:
    """``text`` with ``count`` secrets spliced in, in several forms."""
    pieces = text.split("\n")
    for n in range(count):
        value = secrets[n % len(secrets)]
        b64 = base64.b64encode(value.encode()).decode()
        form = [value, b64, b64[:20] + "\n" + b64[20:], value.encode().hex(), quote(value)][n % 5]
        at = rng.randrange(len(pieces))
        pieces[at] = f"{pieces[at]} {form}"
    return "\n".join(pieces)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def rows(rounds: int) -> list[tuple[str, str, str, str]]:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits
    values = ["".join(rng.choices(alphabet, k=32)) for _ in range(20)]
    secrets = {f"SECRET_{n}": v for n, v in enumerate(values)}
    redactor = Redactor(secrets)
    clean = output(MIB, rng)
    dirty = with_secrets(clean, values, rng, count=100)

    def replace_loop(text: str) -> str:
        for name, value in secrets.items():
            text = text.replace(value, f"[redacted:{name}]")
        return text

    found = []
    ours, naive = pair(lambda: redactor.redact(clean), lambda: replace_loop(clean), rounds=rounds)
    found.append(
        (
            "1 MiB output, 20 secrets, none in it",
            ms(ours),
            f"str.replace loop {ms(naive)}",
            f"{ours / naive:.1f}x",
        )
    )
    found.append(("", f"{MIB / ours / 1e6:.0f} MB/s", "", ""))
    assert redactor.redact(dirty).text.count("[redacted:SECRET_") == 100
    ours, naive = pair(lambda: redactor.redact(dirty), lambda: replace_loop(dirty), rounds=rounds)
    found.append(
        (
            "1 MiB output, 20 secrets, 100 in it (5 forms)",
            ms(ours),
            f"str.replace loop {ms(naive)} (finds 20 of them)",
            f"{ours / naive:.1f}x",
        )
    )

    reply = output(64 * 1024, rng)
    chunks = [reply[i : i + 16] for i in range(0, len(reply), 16)]

    def stream() -> None:
        s = redactor.stream()
        for chunk in chunks:
            s.feed(chunk)
        s.flush()

    streamed, whole = pair(stream, lambda: redactor.redact(reply), rounds=rounds)
    per_chunk = streamed / len(chunks) * 1e6
    found.append(
        (
            f"64 KiB reply streamed in {len(chunks)} chunks of 16",
            ms(streamed),
            f"one redaction at the end {ms(whole)}",
            f"{streamed / whole:.0f}x ({per_chunk:.0f} µs a chunk)",
        )
    )
    prompt = output(32 * 1024, rng)
    once = best(lambda: redactor.redact(prompt), rounds=rounds)
    found.append(("32 KiB prompt, once more before it is sent", ms(once), "-", "-"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Redaction benchmark ({now})",
        "",
        f"Python {platform.python_version()} on {platform.machine()}; ratios are measured "
        "in the same run, alternating rounds, best of each.",
        "",
        "| measure | opsloop | baseline | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(args.rounds)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
