"""Media storage: the local folder by default; S3-compatible storage with expiring signed URLs in production.

No S3 server exists here: the S3 backend is configured as production would be and asked for URLs, which boto3
signs locally (no request is sent)."""

from urllib.parse import parse_qs, urlparse

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages

from annotation.models import ExportJob, Membership, Role

from ..factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

S3 = {
    "BACKEND": "storages.backends.s3.S3Storage",
    "OPTIONS": {
        "bucket_name": "tandem-media",
        "endpoint_url": "http://127.0.0.1:9",  # never contacted
        "region_name": "us-east-1",
        "access_key": "test-key",
        "secret_key": "test-secret",
        "location": "media",
        "querystring_auth": True,
        "querystring_expire": 600,
        "signature_version": "s3v4",
        "default_acl": None,
    },
}


def test_the_default_media_storage_is_the_local_folder():
    assert isinstance(storages["default"], FileSystemStorage)


def test_s3_urls_are_signed_and_expire():
    url = storages.create_storage(S3).url("exports/2026/11/archive.zip")
    query = parse_qs(urlparse(url).query)
    assert urlparse(url).path == "/tandem-media/media/exports/2026/11/archive.zip"
    assert query["X-Amz-Expires"] == ["600"] and query["X-Amz-Signature"]


def test_a_download_from_s3_is_a_redirect_to_a_signed_url(api, settings):
    project = ProjectFactory()
    researcher = UserFactory(username="rita")
    Membership.objects.create(project=project, user=researcher, role=Role.RESEARCHER)
    job = ExportJob.objects.create(project=project, shape="pairs", file_format="csv", status="succeeded")
    settings.STORAGES = {**settings.STORAGES, "default": S3}
    ExportJob.objects.filter(pk=job.pk).update(file="exports/2026/11/pairs.zip")
    response = api.as_user(researcher).get(f"/api/v1/exports/{job.pk}/download/")
    assert response.status_code == 302
    assert "X-Amz-Signature=" in response["Location"] and "/tandem-media/media/exports/" in response["Location"]


def test_the_local_backend_serves_the_archive_itself(api, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    project = ProjectFactory()
    researcher = UserFactory(username="rita")
    Membership.objects.create(project=project, user=researcher, role=Role.RESEARCHER)
    job = ExportJob.objects.create(project=project, shape="pairs", file_format="csv", status="succeeded")
    job.file.save("pairs.zip", ContentFile(b"zip bytes"))
    response = api.as_user(researcher).get(f"/api/v1/exports/{job.pk}/download/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"zip bytes"
    assert "tandem-project" in response["Content-Disposition"]


def test_the_s3_setting_configures_django_storages_from_the_environment():
    import json
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "MEDIA_STORAGE_BACKEND": "s3",
        "S3_BUCKET": "tandem-media",
        "S3_ENDPOINT_URL": "http://minio:9000",
        "S3_URL_EXPIRE_SECONDS": "900",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.STORAGES['default']))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    default = json.loads(out)
    assert default["BACKEND"] == "storages.backends.s3.S3Storage"
    assert default["OPTIONS"]["querystring_auth"] is True and default["OPTIONS"]["querystring_expire"] == 900
    assert default["OPTIONS"]["endpoint_url"] == "http://minio:9000" and default["OPTIONS"]["default_acl"] is None
