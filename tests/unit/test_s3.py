"""modelpipe.s3 pure parts: URI parsing, client settings, botocore error translation."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber
from modelpipe.config import S3Settings
from modelpipe.errors import ConfigError, StorageAuthError, StorageError
from modelpipe.s3 import (
    S3Location,
    check_bucket,
    head_object,
    make_s3_client,
    parse_s3_uri,
    storage_error,
)
from pydantic import SecretStr

SECRET = "very-secret-key-value-42"


@pytest.mark.parametrize(
    ("uri", "bucket", "key"),
    [
        ("s3://models/tiny-sd/abc", "models", "tiny-sd/abc"),
        ("s3://models/tiny-sd/", "models", "tiny-sd"),
        ("s3://models", "models", ""),
        ("s3://my.bucket-1/a", "my.bucket-1", "a"),
    ],
)
def test_parse_s3_uri(uri: str, bucket: str, key: str) -> None:
    assert parse_s3_uri(uri) == S3Location(bucket, key)


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("http://models/x", "not an s3:// URI"),
        ("s3:///x", "no bucket"),
        ("s3://Models/x", "bucket name"),
        ("s3://models/a/../b", r"contains '\.\.'"),
        ("s3://models/a?x=1", "query"),
    ],
)
def test_parse_s3_uri_refuses_with_the_reason(uri: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_s3_uri(uri)


def test_location_child_and_uri() -> None:
    assert S3Location("b", "p").child("unet/w.safetensors").uri == "s3://b/p/unet/w.safetensors"
    assert S3Location("b", "").child("/x/").key == "x"


def _settings(**overrides: object) -> S3Settings:
    values: dict[str, object] = {
        "endpoint_url": "http://127.0.0.1:9000",
        "access_key_id": SecretStr("AKIDEXAMPLE1"),
        "secret_access_key": SecretStr(SECRET),
        "region": "us-east-1",
        "bucket": "models",
    }
    values.update(overrides)
    return S3Settings(**values)  # type: ignore[arg-type]


def test_client_uses_path_style_and_the_endpoint() -> None:
    client = make_s3_client(_settings())
    assert client.meta.endpoint_url == "http://127.0.0.1:9000"
    assert client.meta.config.s3["addressing_style"] == "path"
    assert client.meta.config.retries["mode"] == "standard"


def test_missing_secret_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY"):
        make_s3_client(_settings(secret_access_key=None))


def test_endpoint_without_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match="AWS_S3_ENDPOINT"):
        make_s3_client(_settings(endpoint_url="minio.svc:9000"))


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    ("code", "status"), [("SignatureDoesNotMatch", 403), ("InvalidAccessKeyId", 403), ("403", 403)]
)
def test_refused_credentials_become_auth_error_naming_variables(code: str, status: int) -> None:
    err = storage_error(_client_error(code, status), action="uploading", uri="s3://b/k")
    assert isinstance(err, StorageAuthError)
    assert "AWS_ACCESS_KEY_ID" in err.one_line() and "AWS_SECRET_ACCESS_KEY" in err.one_line()
    assert SECRET not in err.one_line()


def test_missing_bucket_is_named() -> None:
    err = storage_error(_client_error("NoSuchBucket", 404), action="uploading", uri="s3://nope/k")
    assert type(err) is StorageError and "'nope' does not exist" in err.message


def test_unreachable_endpoint_names_the_variable() -> None:
    err = storage_error(
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        action="listing",
        uri="s3://b",
        endpoint="http://127.0.0.1:1",
    )
    assert "cannot reach http://127.0.0.1:1" in err.message and "AWS_S3_ENDPOINT" in err.one_line()


def test_bare_404_on_a_bucket_names_the_missing_bucket_and_the_fix() -> None:
    err = storage_error(_client_error("404", 404), action="opening bucket", uri="s3://nope")
    assert "bucket 'nope' does not exist" in err.message and "create the bucket" in err.one_line()
    assert "bucket" not in storage_error(_client_error("404", 404), action="reading", uri="s3://b/k").message


def test_check_bucket_names_a_missing_bucket() -> None:
    client = make_s3_client(_settings())
    with Stubber(client) as stub:
        stub.add_client_error("head_bucket", service_error_code="404", http_status_code=404)
        with pytest.raises(StorageError, match=r"bucket 'models' does not exist at http://127\.0\.0\.1:9000"):
            check_bucket(client, "models")


def test_check_bucket_leaves_a_refused_bucket_head_to_the_object_requests() -> None:
    client = make_s3_client(_settings())
    with Stubber(client) as stub:
        stub.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
        check_bucket(client, "models")
        stub.assert_no_pending_responses()


def test_head_object_is_none_for_a_missing_key_and_an_auth_error_for_refused_keys() -> None:
    client = make_s3_client(_settings())
    where = S3Location("models", "tiny/unet/config.json")
    with Stubber(client) as stub:
        stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
        stub.add_client_error("head_object", service_error_code="403", http_status_code=403)
        assert head_object(client, where) is None
        with pytest.raises(StorageAuthError) as excinfo:
            head_object(client, where)
    assert "AWS_SECRET_ACCESS_KEY" in excinfo.value.one_line()
