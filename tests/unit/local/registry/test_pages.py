"""The read-only overview page at GET /."""

from __future__ import annotations

from modelpipe.local.registry.pages import describe_location, labels_and_properties

from tests.unit.local.registry.conftest import Api


def test_labels_are_empty_string_properties_and_the_rest_are_properties() -> None:
    custom = {
        "text-to-image": {"metadataType": "MetadataStringValue", "string_value": ""},
        "clip_score": {"metadataType": "MetadataDoubleValue", "double_value": 0.31},
        "clip_score_text": {"metadataType": "MetadataStringValue", "string_value": "0.31"},
        "blob": {"metadataType": "MetadataStructValue", "struct_value": "e30="},
    }
    labels, properties = labels_and_properties(custom)
    assert labels == ["text-to-image"]
    assert properties == [("clip_score", "0.31"), ("clip_score_text", "0.31")]


def test_s3_location_is_split_into_endpoint_bucket_path_region() -> None:
    rows = dict(describe_location("s3://models/tiny/v1?endpoint=http://minio:9000&defaultRegion=us-east-1"))
    assert rows == {
        "Endpoint": "http://minio:9000",
        "Bucket": "models",
        "Path": "tiny/v1",
        "Region": "us-east-1",
    }


def test_overview_shows_models_versions_labels_and_properties(api: Api) -> None:
    label = {"metadataType": "MetadataStringValue", "string_value": ""}
    score = {"metadataType": "MetadataStringValue", "string_value": "0.3125"}
    model = api.model("tiny-sd", description="a <b>tiny</b> model")
    version = api.version(model["id"], "v7", customProperties={"text-to-image": label, "clip_score": score})
    api.created(
        f"/model_versions/{version['id']}/artifacts",
        {"artifactType": "model-artifact", "uri": "s3://bkt/p/q"},
    )
    html = api.client.get("/").text
    for expected in ("tiny-sd", "v7", "text-to-image", "clip_score", "0.3125", "bkt", "p/q"):
        assert expected in html
    assert "<b>tiny</b>" not in html and "&lt;b&gt;tiny&lt;/b&gt;" in html


def test_overview_of_an_empty_registry_says_so(api: Api) -> None:
    response = api.client.get("/")
    assert response.status_code == 200 and "No registered models yet" in response.text
