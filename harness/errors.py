"""User-facing errors: one sentence that names the file (and line or field) and the fix.

The CLI turns a ``UserError`` into ``aimed-eval: error: <message>`` on stderr and exit
code 2, never a traceback. Anything else escaping is a bug in this tool.
"""


class UserError(Exception):
    """A mistake in the user's input (files, flags, specs) that they can fix."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def did_you_mean(name: str, known: list[str]) -> str:
    """A ' (did you mean X?)' suffix for the closest known names, or ''."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def read_json(path, fix: str, where=None):
    """The JSON in ``path``; a UserError naming the file (or ``where``) and ``fix`` when it is
    not JSON, so every reader of a file we wrote says a damaged one the same way. An
    OSError (missing, unreadable) is left to the caller, who knows what the file is for."""
    import json
    from pathlib import Path

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{where or path}: not valid JSON ({str(exc).splitlines()[0]}); {fix}") from None


def read_yaml(path, what: str):
    """The YAML in ``path``, a file the user wrote (``what`` names it: "judge config",
    "rubric"); a UserError with the file, the line where it can say, and the fix. A missing
    file is left to the caller (FileNotFoundError), who knows what to suggest."""
    from pathlib import Path

    import yaml

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: not valid YAML ({exc.problem}); fix the {what}'s syntax there") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; give the path of a .yaml {what} file") from None
    except (yaml.YAMLError, UnicodeDecodeError, PermissionError) as exc:
        raise UserError(f"{path}: not a readable UTF-8 YAML file ({type(exc).__name__}); fix the {what}") from None
