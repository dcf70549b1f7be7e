"""The regexes of a hooks.d file, compiled and matched by Python's ``re`` within a time limit.

Runtimes match hooks.d regexes with Go's regexp, which takes linear time;
Python's ``re`` backtracks, and a regex as short as ``^(.*.*)*x$`` keeps it
busy for hours on a 20-character string. ``re`` cannot be interrupted, so
the regexes are compiled and matched in a child Python that the kernel ends
once it has used :data:`CPU_LIMIT` (an ``ITIMER_PROF`` whose ``SIGPROF``
nothing handles): ``check`` then says it could not tell, rather than running
away. The limit is CPU time, so a busy machine does not cut a plain file
short; a wall-clock limit only guards against a machine too busy to run the
child at all.
"""

import json
import subprocess
import sys
from typing import NamedTuple

CPU_LIMIT = 0.25  # seconds of CPU for all the regexes of one file
WALL_LIMIT = 5.0

# The child: a plain Python (-I: no environment, no user site; -S: no site), reading a
# request on stdin and answering on stdout, both JSON.
_CHILD = """
import signal, sys
signal.setitimer(signal.ITIMER_PROF, float(sys.argv[1]))
import json, re
request = json.load(sys.stdin)
answer = {}
for regex in request["regexes"]:
    try:
        compiled = re.compile(regex)
    except (re.error, RecursionError, OverflowError, ValueError) as error:
        answer[regex] = str(error) or type(error).__name__
    else:
        answer[regex] = [compiled.search(text) is not None for text in request["texts"]]
json.dump(answer, sys.stdout)
"""


class Matches(NamedTuple):
    """What ``re`` made of each regex: why it does not compile, or which texts it matches."""

    errors: dict[str, str]
    found: dict[str, set[str]]

    def search(self, regex: str, text: str) -> bool:
        """True when *regex* compiles and matches somewhere in *text*."""
        return text in self.found.get(regex, set())


def match(regexes: list[str], texts: list[str]) -> Matches | None:
    """Compile each of *regexes* and search each of *texts* with it; ``None`` when that
    takes more than :data:`CPU_LIMIT` (or the child fails, out of memory say)."""
    unique = sorted(set(regexes))
    request = json.dumps({"regexes": unique, "texts": texts})
    try:
        answered = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _CHILD, str(CPU_LIMIT)],
            input=request,
            capture_output=True,
            text=True,
            check=False,
            timeout=WALL_LIMIT,
        )
    except subprocess.TimeoutExpired:
        return None
    if answered.returncode != 0:
        return None
    answer = json.loads(answered.stdout)
    errors = {regex: result for regex, result in answer.items() if isinstance(result, str)}
    found = {
        regex: {text for text, hit in zip(texts, result, strict=True) if hit}
        for regex, result in answer.items()
        if isinstance(result, list)
    }
    return Matches(errors, found)
