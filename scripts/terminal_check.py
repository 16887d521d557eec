#!/usr/bin/env python3
"""Runs a shoal command in a pseudo-terminal of COLS x ROWS and renders what it draws with a
terminal emulator (pyte, from PyPI; scripts/install-deps installs it), as a person would see it.

Checks, on every screen drawn while the command runs and on the last one: at most one line
holds the progress bar (no copies left behind, no wrapped remnants of it), no log line is glued
onto the bar, and every log line starts as log lines start (a time, then the level). A progress
bar must have been seen at least once. Prints the screens taken mid-run and at the end; exits 1
on a failed check.

usage: terminal_check.py COLS ROWS -- COMMAND ARGS...
"""

import fcntl
import os
import pty
import re
import select
import struct
import sys
import termios
import time

import pyte

BAR = re.compile(r"\[[#>\-]{3,}\]")
LOG = re.compile(r"\b(INFO|WARN|ERROR|DEBUG)\b")
# How a log line starts: seconds since start (shoal on a terminal) or an RFC 3339 time (an
# actor's lines, forwarded), then the level.
LOG_START = re.compile(r"^\s*(\d+\.\d\ds|\d{4}-\d\d-\d\dT[\d:.]+Z)\s+(INFO|WARN|ERROR|DEBUG) ")


def check(screen_lines):
    """Problems on one screen."""
    problems = []
    bars = [line for line in screen_lines if BAR.search(line)]
    if len(bars) > 1:
        problems.append(f"{len(bars)} progress lines on screen")
    for line in bars:
        if LOG.search(line):
            problems.append(f"a log line is glued onto the bar: {line!r}")
    for line in screen_lines:
        m = LOG.search(line)
        # A level word in the first 40 columns belongs at the start of a log line.
        if m and m.start() < 40 and not LOG_START.match(line) and not BAR.search(line):
            problems.append(f"a broken log line: {line!r}")
    # A wrapped bar leaves its tail ("... ETA 12s") alone on the next line.
    for line in screen_lines:
        stripped = line.strip()
        if stripped.startswith("ETA") or re.match(r"^\d+s$", stripped):
            problems.append(f"a wrapped remnant of the bar: {line!r}")
    return problems


def main():
    cols, rows = int(sys.argv[1]), int(sys.argv[2])
    command = sys.argv[sys.argv.index("--") + 1 :]
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    winsize = struct.pack("HHHH", rows, cols, 0, 0)
    pid, fd = pty.fork()
    if pid == 0:
        # The size is set before the command starts (it reads it once at start-up).
        fcntl.ioctl(sys.stdout.fileno(), termios.TIOCSWINSZ, winsize)
        os.environ["COLUMNS"] = str(cols)
        os.environ["LINES"] = str(rows)
        os.environ.setdefault("TERM", "xterm-256color")
        os.execvp(command[0], command)
    problems, mid, start, last_check, bar_seen = [], None, time.time(), 0.0, False
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            stream.feed(data)
        now = time.time()
        if now - last_check > 0.5:
            last_check = now
            lines = list(screen.display)
            problems += check(lines)
            bar_seen |= any(BAR.search(l) for l in lines)
            if mid is None and any(BAR.search(l) and "ret" in l and "/s" in l and " 0/" not in l for l in lines) and now - start > 4:
                mid = "\n".join(lines)
    _, status = os.waitpid(pid, 0)
    final = list(screen.display)
    problems += check(final)
    if not bar_seen:
        problems.append("no progress bar was ever drawn")
    print(f"--- mid-run screen ({cols}x{rows}) ---")
    print(mid or "(none taken)")
    print(f"--- final screen ({cols}x{rows}) ---")
    print("\n".join(final))
    code = os.waitstatus_to_exitcode(status)
    print(f"--- exit status {code}")
    for p in sorted(set(problems)):
        print("PROBLEM:", p)
    sys.exit(1 if problems or code != 0 else 0)


if __name__ == "__main__":
    main()
