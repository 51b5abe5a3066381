"""One error type for everything a person can fix, and one way to print it.

Every problem names the file, line and column it comes from, says what is
wrong, and says how to fix it: the people who run the pipeline edit YAML
files, they do not read tracebacks.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Exit codes of the `publish` command.
EXIT_OK = 0
EXIT_CONTENT = 1        # the source or theme has problems
EXIT_USAGE = 2          # the command line is wrong
EXIT_MISSING_TOOL = 3   # a system program or library is not installed
EXIT_ENVIRONMENT = 4    # a folder or file cannot be used: no permission, a full disk, a file where a folder belongs
EXIT_LOCK_WAIT = 5      # --wait ran out while another build of the article held it
EXIT_BUG = 70           # a bug in publish (EX_SOFTWARE)
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C or `kill`


@dataclass(frozen=True)
class Problem:
    """Something wrong in a file, at a place, with a fix."""

    file: str
    line: int           # 1-based; 0 when the problem is about the whole file
    column: int         # 1-based; 0 when unknown
    message: str
    hint: str = ""

    def format(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column or 1}"
        text = f"{where}: error: {self.message}"
        if self.hint:
            text += f"\n  how to fix: {self.hint}"
        return text


class PublishError(Exception):
    """A failure to report to the person running the command, not a bug."""

    exit_code = EXIT_CONTENT

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(p.format() for p in self.problems))

    def format(self) -> str:
        return "\n".join(p.format() for p in self.problems)

    def __reduce__(self):
        # stages run in worker processes: keep the problems (and the class) when pickled back
        return (_restore, (type(self), self.problems))


def _restore(cls, problems):
    error = Exception.__new__(cls)
    PublishError.__init__(error, problems)
    return error


class MissingTool(PublishError):
    """A system dependency is missing; the hint says how to install it."""

    exit_code = EXIT_MISSING_TOOL

    def __init__(self, what: str, install: str, needed_for: str):
        super().__init__(Problem(
            file="publish", line=0, column=0,
            message=f"{what} is not installed; it is needed for {needed_for}",
            hint=f"install it with: {install}",
        ))


class InternalError(PublishError):
    """A bug in the pipeline, reported without a traceback (set PUBLISH_DEBUG=1 to see it)."""

    exit_code = EXIT_BUG


class EnvironmentProblem(PublishError):
    """A folder or file that cannot be used as it is (permissions, a full disk, the wrong kind of path)."""

    exit_code = EXIT_ENVIRONMENT


class LockWaitExpired(PublishError):
    """`--wait` ran out while another build of the same article was still running."""

    exit_code = EXIT_LOCK_WAIT


def cannot_use(path: str | Path, what: str, exc: OSError, fix: str) -> EnvironmentProblem:
    """The error for an OSError on *path*: what could not be done and why, with a fix fitted to the cause.

    *fix* is the way out particular to this path (e.g. "choose another folder with --out").
    """
    import errno
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        hint = f"free some disk space, or {fix}"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = f"make it writable for this user, or {fix}"
    elif exc.errno == errno.ENOTDIR:
        reason = "part of the path is a file, not a folder"
        hint = f"remove or rename that file, or {fix}"
    elif exc.errno == errno.EISDIR:
        reason = "it is a folder, not a file"
        hint = fix
    else:
        hint = fix
    return EnvironmentProblem(Problem(display_path(path), 0, 0, f"{what} ({reason})", hint))


def display_path(path: str | Path) -> str:
    """A path as the person running the command would type it: relative to where they are, if inside."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def problem_at(file: str | Path, located: object, message: str, hint: str = "") -> Problem:
    """A Problem at the position carried by a located value (see yamlfile)."""
    return Problem(str(file), getattr(located, "line", 0), getattr(located, "column", 0), message, hint)
