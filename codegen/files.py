"""Turn the ways a named file fails into one ``FileError`` line, where the file is opened.

Reading and writing go through pyarrow, ``csv`` and ``open``; each fails in its own
way (``OSError`` with pyarrow's long detail, ``pyarrow.ArrowInvalid``,
``UnicodeDecodeError``). The person who typed the path needs one sentence that
names the path and what is wrong with it, not the library that noticed.
"""

from __future__ import annotations

import contextlib
import csv
import errno
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from codegen.exc import FileError

_REASONS = {
    errno.ENOENT: "no such file or folder",
    errno.EACCES: "permission denied",
    errno.EISDIR: "is a folder",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.ENOSPC: "no space left on the device",
}


@contextlib.contextmanager
def file_errors(path: Path | str, doing: str) -> Iterator[None]:
    """Raise ``FileError`` naming ``path`` for any failure to ``doing`` (read/write) it."""
    try:
        yield
    except FileError:
        raise
    except OSError as exc:
        reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc).splitlines()[0]
        if exc.errno == errno.ENOENT and doing == "write":
            reason = f"cannot write: folder {str(Path(path).parent)!r} does not exist"
        raise FileError(path, reason) from None
    except pa.ArrowInvalid as exc:
        detail = (str(exc).splitlines() or [""])[0].rpartition("': ")[2]
        raise FileError(path, f"not a Parquet file ({detail})" if detail else
                        "not a Parquet file") from None
    except UnicodeDecodeError as exc:
        raise FileError(path, f"not {exc.encoding} text (CSV): give its encoding"
                              " (--encoding)") from None
    except csv.Error as exc:
        raise FileError(path, f"not CSV: {exc}") from None


def text_encoding(path: Path | str, given: str | None = None) -> str:
    """The encoding of a text (CSV) file: ``given``, else its BOM, else UTF-8, else GBK.

    Excel on a Chinese Windows saves "CSV" in the ANSI code page, GBK (936),
    with no BOM; "CSV UTF-8" starts with a BOM. A file that is valid UTF-8 is
    read as UTF-8 (GBK text of any length is almost never valid UTF-8); else
    as GB 18030, the superset of GBK. Anything else: name it with ``given``.
    """
    if given:
        import codecs

        try:
            return codecs.lookup(given).name
        except LookupError:
            raise FileError(path, f"unknown encoding {given!r}") from None
    with file_errors(path, "read"), open(path, "rb") as fh:
        raw = fh.read()
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    for encoding in ("utf-8", "gb18030"):
        try:
            raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    raise FileError(path, "neither Parquet nor UTF-8 or GBK text (CSV): name its encoding"
                          " with --encoding")
