"""Object stores: ``s3://``, ``gs://`` and ``https://`` (read-only) paths.

:class:`RemotePath` names an object, or a prefix, on an object store and does
with it what :class:`pathlib.Path` does with a file or a folder, as far as the
readers and writers need: ``/``, ``name``, ``parent``, ``exists()``,
``read_bytes()``, ``write_bytes()``, ``iterdir()``... It carries only its URL, so
it pickles for the workers of a cluster; each process makes its own client.

The client is obstore's (docs/design/architecture.md, "Object stores", says why): it reads
credentials and the endpoint from each store's standard environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``,
``AWS_REGION``, ``AWS_PROFILE``...; ``GOOGLE_APPLICATION_CREDENTIALS``...),
retries transient errors a bounded number of times, and raises errors that this
module turns into :class:`~batchproc.errors.BatchprocError` naming the object,
never a credential.
"""

from __future__ import annotations

import datetime
import io
import os
import re
import threading
from collections.abc import Iterator
from typing import Any

from batchproc.errors import BatchprocError

#: Schemes read and written here; ``https``/``http`` only read.
SCHEMES = ("s3", "gs", "https", "http")
READ_ONLY = ("https", "http")
#: Environment variables whose values must never reach a message.
SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "GOOGLE_SERVICE_ACCOUNT_KEY", "AZURE_STORAGE_ACCOUNT_KEY")
#: Bounded retries of transient errors (5xx, timeouts, refused connections), then the error.
RETRY = {
    "max_retries": 3,
    "backoff": {"init_backoff": datetime.timedelta(milliseconds=100), "max_backoff": datetime.timedelta(seconds=2), "base": 2},
    "retry_timeout": datetime.timedelta(seconds=20),
}
CLIENT = {"connect_timeout": "5s", "timeout": "60s"}

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$")


def is_url(text: Any) -> bool:
    """Is ``text`` a URL (``scheme://...``) rather than a local path?"""
    return isinstance(text, str) and _URL.match(text) is not None


def local_or_remote(text: Any) -> Any:
    """``text`` as a local :class:`~pathlib.Path` (a path, or a ``file://`` URL) or
    a :class:`RemotePath` (``s3://``, ``gs://``, ``https://``); anything else
    (a list of files, a Path) as it is."""
    from pathlib import Path

    if isinstance(text, RemotePath) or not isinstance(text, str):
        return text
    match = _URL.match(text)
    if match is None:
        return Path(text)
    scheme = match.group(1).lower()
    if scheme == "file":
        rest = match.group(2)
        return Path(rest if rest.startswith("/") else "/" + rest.split("/", 1)[-1] if "/" in rest else rest)
    if scheme not in SCHEMES:
        raise BatchprocError(f"path: the scheme {scheme!r} of {text!r} is not one batchproc reads; use a local path, file://, s3://, gs:// or https://.")
    return RemotePath(text)


def anonymous() -> bool:
    """Are object stores read without credentials (``--anonymous``, or
    ``BATCHPROC_ANONYMOUS``, ``AWS_SKIP_SIGNATURE`` or ``GOOGLE_SKIP_SIGNATURE``
    set to true)?"""
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes") for name in ("BATCHPROC_ANONYMOUS", "AWS_SKIP_SIGNATURE", "GOOGLE_SKIP_SIGNATURE")
    )


def scrub(text: str) -> str:
    """``text`` with the value of every credential in the environment blanked."""
    for name in SECRETS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


_CLIENTS: dict[tuple[str, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(scheme: str, root: str) -> Any:
    """obstore's store for ``scheme://root`` (a bucket, or an https host), one per
    process and bucket."""
    key = (scheme, root)
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            from obstore.store import from_url

            options: dict[str, Any] = {"retry_config": RETRY, "client_options": dict(CLIENT)}
            if os.environ.get("AWS_ALLOW_HTTP") or os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
                options["client_options"]["allow_http"] = True
            if scheme in READ_ONLY:
                options["client_options"]["allow_http"] = scheme == "http"
            elif anonymous():
                options["skip_signature"] = True  # public data: requests go unsigned, no credentials looked for
            elif scheme == "s3" and os.environ.get("AWS_PROFILE") and not os.environ.get("AWS_ACCESS_KEY_ID"):
                options.update(_profile())
            try:
                _CLIENTS[key] = from_url(f"{scheme}://{root}", **options)
            except Exception as error:
                raise BatchprocError(f"path: cannot use {scheme}://{root}: {scrub(_first_line(error))}") from None
        return _CLIENTS[key]


def _profile() -> dict[str, Any]:
    """The credentials (and endpoint) of ``AWS_PROFILE`` from ``~/.aws``: obstore
    reads only the environment's keys, so boto3 reads the profile."""
    try:
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        raise BatchprocError(
            "path: AWS_PROFILE is read with boto3, which is not installed; pip install 'batchproc[aws]', or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        ) from None
    try:
        session = boto3.Session(profile_name=os.environ["AWS_PROFILE"])
        options: dict[str, Any] = {"credential_provider": Boto3CredentialProvider(session)}
        endpoint = None if os.environ.get("AWS_ENDPOINT_URL") else session.client("s3").meta.endpoint_url
    except Exception as error:
        raise BatchprocError(f"path: cannot use the AWS profile {os.environ['AWS_PROFILE']!r}: {scrub(_first_line(error))}") from None
    if endpoint and "amazonaws.com" not in endpoint:  # a profile's own endpoint_url (an S3-compatible store)
        options["endpoint"] = endpoint
        if session.region_name:
            options["region"] = session.region_name
    return options


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class RemotePath:
    """An object, or a prefix standing for a folder, on an object store (see the module)."""

    def __init__(self, url: str) -> None:
        match = _URL.match(url)
        if match is None:
            raise ValueError(url)
        self.scheme = match.group(1).lower()
        root, _, key = match.group(2).partition("/")  # a bucket, or an https host
        if not root:
            raise BatchprocError(f"path: {url!r} names no bucket or host.")
        self.root = root
        self.key = key.strip("/")

    # ------------------------------------------------------------ naming

    def __str__(self) -> str:
        return f"{self.scheme}://{self.root}/{self.key}" if self.key else f"{self.scheme}://{self.root}"

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __truediv__(self, name: str) -> RemotePath:
        return RemotePath(f"{self}/{str(name).strip('/')}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemotePath, (str(self),))

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> RemotePath:
        return RemotePath(f"{self.scheme}://{self.root}/{self.key.rsplit('/', 1)[0] if '/' in self.key else ''}")

    @property
    def suffix(self) -> str:
        name = self.name
        return name[name.rfind(".") :] if "." in name else ""

    def with_name(self, name: str) -> RemotePath:
        return self.parent / name

    @property
    def writable(self) -> bool:
        return self.scheme not in READ_ONLY

    # ------------------------------------------------------------ reading

    @property
    def _store(self) -> Any:
        return _client(self.scheme, self.root)

    def _call(self, what: str, action: Any) -> Any:
        """``action()``, its errors said as a BatchprocError naming this object
        (FileNotFoundError passes through: callers decide what missing means)."""
        try:
            return action()
        except FileNotFoundError as error:
            if "nosuchbucket" in str(error).lower():
                raise BatchprocError(f"{what} {str(self)!r}: the bucket {self.root!r} does not exist.") from None
            raise
        except BatchprocError:
            raise
        except Exception as error:
            raise BatchprocError(f"{what} {str(self)!r}: {describe(error)}.") from None

    def read_bytes(self) -> bytes:
        import obstore

        return self._call("cannot read", lambda: bytes(obstore.get(self._store, self.key).bytes()))

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def read_range(self, start: int, length: int) -> bytes:
        import obstore

        return self._call("cannot read", lambda: bytes(obstore.get_range(self._store, self.key, start=start, length=length)))

    def read_suffix(self, length: int) -> tuple[bytes, int]:
        """The last ``length`` bytes of the object (one request), and its size."""
        import obstore

        def get() -> tuple[bytes, int]:
            result = obstore.get(self._store, self.key, options={"range": {"suffix": length}})
            return bytes(result.bytes()), int(result.meta["size"])

        return self._call("cannot read", get)

    def size(self) -> int:
        return int(self.stat()["size"])

    def stat(self) -> dict[str, Any]:
        """The object's ``size``, ``e_tag`` and ``last_modified`` (one HEAD)."""
        import obstore

        return dict(self._call("cannot read", lambda: obstore.head(self._store, self.key)))

    def is_file(self) -> bool:
        import obstore

        try:
            self._call("cannot read", lambda: obstore.head(self._store, self.key))
        except FileNotFoundError:
            return False
        return True

    def is_dir(self) -> bool:
        return self.writable and next(iter(self.rglob_keys(limit=1)), None) is not None

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def rglob_keys(self, limit: int | None = None) -> Iterator[str]:
        """Every object under this prefix, as keys relative to it (one listing,
        in pages)."""
        import obstore

        if not self.writable:
            raise BatchprocError(f"cannot list {str(self)!r}: {self.scheme}:// has no listing; name the file or store itself.")
        prefix = self.key + "/" if self.key else ""
        seen = 0
        stream = self._call("cannot list", lambda: obstore.list(self._store, prefix or None, chunk_size=1000))
        try:
            for batch in stream:
                for meta in batch:
                    yield meta["path"][len(prefix) :]
                    seen += 1
                    if limit is not None and seen >= limit:
                        return
        except BatchprocError:
            raise
        except Exception as error:
            raise BatchprocError(f"cannot list {str(self)!r}: {describe(error)}") from None

    def matches(self) -> list[RemotePath]:
        """What this path, a pattern (``*``, ``?``, ``[...]`` within a name, as
        in a shell), names: the objects and prefixes whose names match it part
        by part, found with one listing of the prefix before the first wildcard."""
        import fnmatch

        parts = self.key.split("/")
        fixed = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
        base = RemotePath(f"{self.scheme}://{self.root}/{'/'.join(parts[:fixed])}")
        found: set[str] = set()
        for key in base.rglob_keys():
            names = key.split("/")
            if len(names) >= len(parts) - fixed and all(fnmatch.fnmatchcase(n, p) for n, p in zip(names, parts[fixed:], strict=False)):
                found.add("/".join(names[: len(parts) - fixed]))
        return [base / name for name in found]

    def iterdir(self) -> Iterator[RemotePath]:
        """The objects and prefixes right under this prefix."""
        import obstore

        prefix = self.key + "/" if self.key else None
        listed = self._call("cannot list", lambda: obstore.list_with_delimiter(self._store, prefix))
        for common in listed["common_prefixes"]:
            yield RemotePath(f"{self.scheme}://{self.root}/{common.rstrip('/')}")
        for meta in listed["objects"]:
            yield RemotePath(f"{self.scheme}://{self.root}/{meta['path']}")

    def open_reader(self) -> io.RawIOBase:
        """A seekable binary file over the object, reading ranges as asked (a tiled
        TIFF reads only the tiles it needs)."""
        import obstore

        return _Reader(self._call("cannot read", lambda: obstore.open_reader(self._store, self.key, buffer_size=256 * 1024)), str(self))

    # ------------------------------------------------------------ writing

    def _writable(self) -> None:
        if not self.writable:
            raise BatchprocError(f"cannot write {str(self)!r}: {self.scheme}:// is read-only; write to a local path, s3:// or gs://.")

    def write_bytes(self, data: Any) -> None:
        """Put the object whole (an object store's put is all or nothing)."""
        import obstore

        self._writable()
        # One request, whatever the size (a multipart upload takes several, and is slower: benchmarks/results/s3-requests).
        self._call("cannot write", lambda: obstore.put(self._store, self.key, data, use_multipart=False))

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def create(self, data: bytes) -> bool:
        """Put the object only if none is there (a conditional create); False if one was."""
        import obstore
        from obstore.exceptions import AlreadyExistsError

        self._writable()

        def put() -> bool:
            try:
                obstore.put(self._store, self.key, data, mode="create")
            except AlreadyExistsError:
                return False
            return True

        return bool(self._call("cannot write", put))

    def unlink(self, missing_ok: bool = False) -> None:
        import obstore

        self._writable()
        try:
            self._call("cannot delete", lambda: obstore.delete(self._store, self.key))
        except FileNotFoundError:
            if not missing_ok:
                raise

    def remove_tree(self) -> None:
        """Delete every object under this prefix."""
        import obstore

        self._writable()
        prefix = self.key + "/" if self.key else ""
        keys = [prefix + key for key in self.rglob_keys()]
        for start in range(0, len(keys), 1000):
            self._call("cannot delete", lambda batch=keys[start : start + 1000]: obstore.delete(self._store, batch))

    def copy_to(self, target: RemotePath) -> None:
        """A copy made by the server (the bytes do not pass through here)."""
        import obstore

        self._writable()
        self._call("cannot copy", lambda: obstore.copy(self._store, self.key, target.key))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing: an object store has no folders."""


class _Reader(io.RawIOBase):
    """obstore's readable file as the binary file tifffile and imageio read."""

    def __init__(self, file: Any, name: str) -> None:
        self.file, self.name = file, name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return bytes(self.file.read(size) if size is not None and size >= 0 else self.file.read())
        except Exception as error:
            raise BatchprocError(f"cannot read {self.name!r}: {describe(error)}") from None

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    @property
    def size(self) -> int:
        return int(self.file.size)


def _status(text: str, code: int) -> bool:
    """Whether ``text`` holds the HTTP status ``code`` as a number of its own, not as
    digits of a port or an address (``127.0.0.1:44031`` is no 403)."""
    return re.search(rf"(?<![\d.:]){code}(?!\d)", text) is not None


def describe(error: BaseException) -> str:
    """An object store's error in one line a user can act on, without credentials."""
    # The server's own body is left out: an S3 error document may name the access key.
    text = scrub(_first_line(error).split("<?xml")[0].split("<Error>")[0].rstrip(" :"))
    low = str(error).lower()
    kind = type(error).__name__
    if "nosuchbucket" in low or "bucket does not exist" in low:
        return "the bucket does not exist"
    if "permissiondenied" in kind.lower() or _status(low, 403) or "accessdenied" in low or "signaturedoesnotmatch" in low or "invalidaccesskeyid" in low:
        return "access denied (check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or anonymous access with AWS_SKIP_SIGNATURE=true)"
    if "unauthenticated" in kind.lower() or _status(low, 401):
        return "not authenticated (no valid credentials found in the environment)"
    if any(code in low for code in ("500 internal", "502 bad", "503 service", "504 gateway", "slowdown")):
        return f"the object store kept failing with server errors after {RETRY['max_retries']} retries ({text[:200]})"
    if "connection refused" in low or "error sending request" in low or "timed out" in low or "timeout" in low or "dns" in low:
        return f"the object store did not answer after {RETRY['max_retries']} retries ({text[:200]})"
    return text[:300]
