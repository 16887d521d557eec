#!/usr/bin/env python3
"""Runs a shoal command in a pseudo-terminal of COLS x ROWS and renders what it draws with a
terminal emulator (pyte, from PyPI; scripts/install-deps installs it), as a person would see it.

Checks, on every screen drawn while the command runs and on the last one: at most one line
holds the progress bar, no line is wider than the terminal and wrapped, and no log line is glued
onto the bar. Prints the screens taken mid-run and at the end; exits 1 on a failed check.

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

BAR = re.compile(r"\[[#>\-]+\]")
LOG = re.compile(r"\b(INFO|WARN|ERROR|DEBUG)\b")


def check(screen_lines, cols):
    """Problems on one screen."""
    problems = []
    bars = [line for line in screen_lines if BAR.search(line) and "ETA" in line]
    if len(bars) > 1:
        problems.append(f"{len(bars)} progress lines on screen")
    for line in bars:
        if LOG.search(line):
            problems.append(f"a log line is glued onto the bar: {line!r}")
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
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["COLUMNS"] = str(cols)
        os.environ["LINES"] = str(rows)
        os.environ.setdefault("TERM", "xterm-256color")
        os.execvp(command[0], command)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    problems, mid, start, last_check = [], None, time.time(), 0.0
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
            problems += check(lines, cols)
            if mid is None and any(BAR.search(l) and "ret" in l and "/s" in l and " 0/" not in l for l in lines) and now - start > 4:
                mid = "\n".join(lines)
    _, status = os.waitpid(pid, 0)
    final = list(screen.display)
    problems += check(final, cols)
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
