"""The S3 store adapter: the only module that talks to an object store.

boto3 is the client: the AWS SDK for Python, kept by AWS, the ecosystem's standard (the
same SDK family etcd-backup-restore uses), with path-style addressing, custom endpoints,
CA files and multipart uploads. dcsctl sends the parts from its own threads, each part read
and sealed in the thread that sends it. boto3 is imported inside the functions that need
it: it costs ~150 ms to import, and most dcsctl commands never touch a store.

Credentials come only from an AWS shared-credentials file that must be 0600; they are
handed to boto3 as values, never through argv or the environment, and never printed.
"""

from __future__ import annotations

import configparser
import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcsctl.errors import DcsctlError, EnvironmentProblem, NotFound
from dcsctl.spec import S3Store

if TYPE_CHECKING:
    from collections.abc import Sequence

UPLOAD_THREADS = 10  # boto3 transfer manager's default concurrency


class StoreError(DcsctlError):
    """The object store refused or failed a request."""


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)


def read_credentials(path: Path, profile: str) -> Credentials:
    """Static keys from an AWS shared-credentials file, refused unless only its owner can
    read it (a secret readable by others is already leaked)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError as exc:
        raise NotFound(
            f"the store's credentials file {path} does not exist",
            fix=f"write it (mode 0600) in the AWS format: [{profile}] with aws_access_key_id "
            "and aws_secret_access_key, or set backup.store.s3.credentials_file",
        ) from exc
    if mode & 0o077:
        raise EnvironmentProblem(
            f"the store's credentials file {path} is readable by others (mode {mode:04o})",
            fix=f"chmod 600 {path} (and rotate the keys if others could read them)",
        )
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(), source=str(path))
        section = parser[profile]
        return Credentials(section["aws_access_key_id"].strip(),
                           section["aws_secret_access_key"].strip())
    except (configparser.Error, KeyError, UnicodeDecodeError) as exc:
        raise EnvironmentProblem(
            f"{path} has no usable [{profile}] section with aws_access_key_id and "
            "aws_secret_access_key",
            fix="write it in the AWS shared-credentials format (see docs/backup.md)",
        ) from exc


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: dt.datetime


# (what botocore says, what dcsctl says, fix). Matched on the S3 error code.
_CODES: dict[str, tuple[str, str]] = {
    "NoSuchBucket": ("bucket {bucket!r} does not exist on {endpoint}",
                     "create it (or fix backup.store.s3.bucket); dcsctl never creates buckets"),
    "InvalidAccessKeyId": ("{endpoint} does not know the access key in {credentials}",
                           "put the right keys in {credentials}"),
    "SignatureDoesNotMatch": ("{endpoint} refused the secret key in {credentials}",
                              "put the right keys in {credentials}"),
    "AccessDenied": ("{endpoint} denied access to bucket {bucket!r} with the keys in "
                     "{credentials}", "grant those keys read/write on the bucket"),
    "InvalidAccessKeyID": ("{endpoint} does not know the access key in {credentials}",
                           "put the right keys in {credentials}"),
    # versitygw's word for an unknown access key.
    "XAdminUserNotFound": ("{endpoint} does not know the access key in {credentials}",
                           "put the right keys in {credentials}"),
}
_FULL = ("StorageFull", "XMinioStorageFull", "InsufficientStorage", "EntityTooLarge")
_CHECK = "check the store's logs and backup.store.s3 in the spec"
_OUT_OF_SPACE = ("the store at {endpoint} is out of space",
                 "free space on the store (or lower retention), then run the backup again")
_TIMED_OUT = ("{endpoint} did not answer within {timeout} s",
              "check the store's load and network, or raise backup.store.s3.timeout_s")
_UNTRUSTED = ("the TLS certificate of {endpoint} is not trusted",
              "set backup.store.s3.ca_file to the CA that signed the store's certificate")
_UNREACHABLE = ("lost the store at {endpoint} (connection refused, reset or closed)",
                "start the store or fix backup.store.s3.endpoint, then run again")


class Store:
    """One bucket (and key prefix) of an S3-compatible store."""

    def __init__(self, settings: S3Store, *, timeout_s: float | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.settings = settings
        self.credentials_path = Path(settings.credentials_file).expanduser()
        credentials = read_credentials(self.credentials_path, settings.profile)
        timeout = timeout_s if timeout_s is not None else settings.timeout_s
        config = Config(
            region_name=settings.region,
            # No SHA-256 over every part for the signature (botocore's default when no
            # checksum header is sent): TLS carries the bytes, the AEAD proves them.
            s3={"addressing_style": "path" if settings.path_style else "virtual",
                "payload_signing_enabled": False},
            connect_timeout=timeout, read_timeout=timeout,
            # One retry: a store that is down should fail a backup in seconds, not minutes.
            retries={"total_max_attempts": 2, "mode": "standard"},
            # Integrity is the AEAD's job (and TLS's in transit): no CRC pass over each part.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=UPLOAD_THREADS + 2,
        )
        verify: str | bool = True
        if settings.ca_file:
            ca_file = Path(settings.ca_file).expanduser()
            if not ca_file.is_file():
                raise NotFound(f"the store's CA file {ca_file} does not exist",
                               fix="put the CA certificate that signed the store's "
                               "certificate there, or fix backup.store.s3.ca_file")
            verify = str(ca_file)
        self._client: Any = boto3.session.Session().client(
            "s3", endpoint_url=settings.endpoint,
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            verify=verify, config=config,
        )

    def key(self, name: str) -> str:
        return self.settings.prefix + name

    # -- errors --
    def _where(self) -> dict[str, str]:
        return {"bucket": self.settings.bucket, "endpoint": self.settings.endpoint,
                "credentials": str(self.credentials_path),
                "timeout": str(self.settings.timeout_s)}

    def _answer(self, cause: Any, doing: str) -> StoreError:
        """The store answered with an S3 error code."""
        code = str(cause.response.get("Error", {}).get("Code", ""))
        message = str(cause.response.get("Error", {}).get("Message", "")) or code
        if code in _CODES:
            what, fix = _CODES[code]
        elif code in _FULL or "space" in message.lower():
            what, fix = _OUT_OF_SPACE
        else:
            what, fix = "{endpoint} answered " + code.replace("{", "") + ": " + \
                message.replace("{", "(").replace("}", ")"), _CHECK
        return StoreError(f"{doing}: {what.format(**self._where())}",
                          fix=fix.format(**self._where()))

    def _translate(self, exc: Exception, doing: str) -> StoreError:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
            SSLError,
        )
        cause = exc
        if isinstance(cause, ClientError):
            return self._answer(cause, doing)
        # Order matters: botocore's timeouts and TLS errors are connection errors too.
        if isinstance(cause, SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(cause):
            return StoreError(f"{doing}: {_UNTRUSTED[0].format(**self._where())}",
                              fix=_UNTRUSTED[1].format(**self._where()))
        transport: list[tuple[type[Exception] | tuple[type[Exception], ...], tuple[str, str]]] = [
            ((ReadTimeoutError, ConnectTimeoutError), _TIMED_OUT),
            # A store that dies mid-request ends the TLS stream without a close_notify.
            ((EndpointConnectionError, ConnectionClosedError, SSLError), _UNREACHABLE),
        ]
        what, fix = next((texts for kinds, texts in transport if isinstance(cause, kinds)),
                         ("{endpoint}: " + type(cause).__name__, _CHECK))
        # botocore's own text repeats the URL ("SSL validation failed for https://…"):
        # the underlying error says what happened.
        detail = str(getattr(cause, "kwargs", {}).get("error") or cause)[:200]
        detail = detail.replace("{", "(").replace("}", ")")
        return StoreError(f"{doing}: {what.format(**self._where())} ({detail})",
                          fix=fix.format(**self._where()))

    def _call(self, doing: str, call: Callable[[], Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            return call()
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, doing) from None

    # -- operations --
    def check(self) -> None:
        """The bucket exists and the keys work. A one-key listing, not HEAD: an answer to
        HEAD has no body, so a bad key and a missing bucket would both be a bare 403/404."""
        self._call(f"checking bucket {self.settings.bucket!r}",
                   lambda: self._client.list_objects_v2(Bucket=self.settings.bucket,
                                                        Prefix=self.settings.prefix, MaxKeys=1))

    def upload_parts(self, name: str, parts: Sequence[Callable[[], bytes]],
                     threads: int = UPLOAD_THREADS) -> None:
        """A multipart upload whose parts are made by `parts` (each called in a worker
        thread, so making a part — reading and sealing it — runs in parallel with sending
        others). Completed only when every part is in; on any failure the upload is
        aborted (best effort: a dead store keeps it until the next backup's
        `abort_uploads`), so S3 never lists a partial object."""
        from concurrent.futures import ThreadPoolExecutor

        key, bucket = self.key(name), self.settings.bucket
        doing = f"uploading {key}"
        upload_id = self._call(doing, lambda: self._client.create_multipart_upload(
            Bucket=bucket, Key=key))["UploadId"]

        def send(number: int) -> dict[str, Any]:
            body = parts[number - 1]()
            answer = self._client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id,
                                              PartNumber=number, Body=body)
            return {"PartNumber": number, "ETag": answer["ETag"]}

        try:
            with ThreadPoolExecutor(threads, thread_name_prefix="dcsctl-upload") as pool:
                done = self._call(doing, lambda: list(pool.map(send, range(1, len(parts) + 1))))
            self._call(doing, lambda: self._client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}))
        except BaseException:
            with contextlib.suppress(StoreError):
                self._call(f"aborting the upload of {key}", lambda: self._client.
                           abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id))
            raise

    def put(self, name: str, data: bytes) -> None:
        self._call(f"writing {self.key(name)}", lambda: self._client.put_object(
            Bucket=self.settings.bucket, Key=self.key(name), Body=data))

    def get(self, name: str) -> bytes:
        body = self._call(f"reading {self.key(name)}", lambda: self._client.get_object(
            Bucket=self.settings.bucket, Key=self.key(name)))["Body"]
        data: bytes = self._call(f"reading {self.key(name)}", body.read)
        return data

    def chunks(self, name: str, size: int = 1 << 20) -> Iterator[bytes]:
        body = self._call(f"reading {self.key(name)}", lambda: self._client.get_object(
            Bucket=self.settings.bucket, Key=self.key(name)))["Body"]
        iterator = body.iter_chunks(size)
        while True:
            chunk: bytes | None = self._call(f"reading {self.key(name)}",
                                             lambda: next(iterator, None))
            if chunk is None:
                return
            yield chunk

    def list(self, under: str) -> list[StoredObject]:
        """Every object whose name starts with `under` (below the prefix)."""
        def page_through() -> list[StoredObject]:
            found = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=self.key(under)):
                for item in page.get("Contents", ()):
                    found.append(StoredObject(str(item["Key"])[len(self.settings.prefix):],
                                              int(item["Size"]), item["LastModified"]))
            return found

        listed: list[StoredObject] = self._call(
            f"listing {self.settings.bucket}/{self.key(under)}", page_through)
        return listed

    def delete(self, names: Sequence[str]) -> None:
        for name in names:
            key = self.key(name)
            self._call(f"deleting {key}", functools.partial(
                self._client.delete_object, Bucket=self.settings.bucket, Key=key))

    def abort_uploads(self, under: str) -> int:
        """Abort every unfinished multipart upload below `under` (left by a killed run)."""
        def abort() -> int:
            answer = self._client.list_multipart_uploads(Bucket=self.settings.bucket,
                                                         Prefix=self.key(under))
            uploads = answer.get("Uploads", ())
            for upload in uploads:
                self._client.abort_multipart_upload(Bucket=self.settings.bucket,
                                                    Key=upload["Key"], UploadId=upload["UploadId"])
            return len(uploads)

        aborted: int = self._call(f"aborting unfinished uploads below {self.key(under)}", abort)
        return aborted
