"""Independent implementations the tests check git-prov against (never imported by
the package itself)."""

from __future__ import annotations

from gitprov.errors import DataError
from gitprov.store.objects import ObjectFormat
from gitprov.store.packfile import TYPE_NAMES


def dulwich_check(fmt: ObjectFormat, type_name: str, data: bytes, oid: str) -> None:
    """dulwich parses and ``check()``s the object (what ``git fsck`` checks per object)
    and its id, computed with the repository's own format, must equal ours. (Not
    dulwich's ``MemoryObjectStore`` itself: it files SHA-256 objects under their SHA-1 id.)"""
    from dulwich.errors import ObjectFormatException
    from dulwich.object_format import get_object_format
    from dulwich.objects import ShaFile

    type_num = {v: k for k, v in TYPE_NAMES.items()}[type_name]
    dformat = get_object_format(fmt.name)
    try:
        obj = ShaFile.from_raw_string(type_num, data, object_format=dformat)
        obj.check()
    except ObjectFormatException as exc:
        raise DataError(f"malformed {type_name} {oid}: {exc}") from exc
    theirs = obj.get_id(dformat).decode("ascii")
    if theirs != oid:
        raise DataError(f"{type_name} id mismatch: ours {oid}, dulwich {theirs}")
