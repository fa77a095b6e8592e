"""annotation.media: images are taken by their content, within the limits, and stored once by content hash."""

import io
import os

import pytest
from PIL import Image

from annotation.media import MediaInvalid, media_check, media_discard, media_store
from annotation.models import Candidate

from ..factories import PromptFactory

pytestmark = pytest.mark.django_db


def image_bytes(image_format: str, size=(8, 6), color=(200, 30, 30), **save) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=image_format, **save)
    return out.getvalue()


def animated_gif(size=(10, 10), frames=3) -> bytes:
    out = io.BytesIO()
    images = [Image.new("RGB", size, (40 * i, 0, 255 - 40 * i)) for i in range(frames)]
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:])
    return out.getvalue()


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def stored_files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.parametrize(
    ("image_format", "mime_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_it_takes_png_jpeg_webp_and_gif_by_their_content(image_format, mime_type):
    # The name says .txt: only the content counts.
    info = media_check(image_bytes(image_format), modality="image", name="picture.txt")
    assert (info.mime_type, info.width, info.height) == (mime_type, 8, 6)
    assert info.storage_name.startswith(f"candidates/sha256/{info.sha256[:2]}/{info.sha256}.")


def test_it_takes_an_animated_gif_and_decodes_every_frame():
    assert media_check(animated_gif(frames=4), modality="image", name="anim.gif").mime_type == "image/gif"


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (b"\x7fELF\x02\x01\x01\x00" + bytes(64), "executable (ELF)"),
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(64), "executable (Windows PE)"),
        (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "SVG document",
        ),
        (b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", "HTML page"),
        (b"", "empty"),
    ],
)
def test_it_refuses_what_is_not_an_image_whatever_its_name_and_names_the_file(content, looks_like):
    with pytest.raises(MediaInvalid) as refused:
        media_check(content, modality="image", name="img/cat-1.png")
    message = str(refused.value)
    assert message.startswith("img/cat-1.png: ") and looks_like in message
    assert "not a PNG, JPEG, WebP or GIF image" in message


def test_it_refuses_a_truncated_png():
    whole = image_bytes("PNG", size=(64, 64), color=(1, 2, 3))
    with pytest.raises(MediaInvalid, match=r"^cut\.png: a truncated or corrupt PNG image"):
        media_check(whole[: len(whole) // 2], modality="image", name="cut.png")


def test_it_refuses_a_truncated_jpeg():
    noisy = Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3))
    out = io.BytesIO()
    noisy.save(out, format="JPEG")
    whole = out.getvalue()
    with pytest.raises(MediaInvalid, match=r"^cut\.jpg: a truncated or corrupt JPEG image"):
        media_check(whole[: len(whole) // 2], modality="image", name="cut.jpg")


def test_it_refuses_a_file_over_the_size_limit(settings):
    data = image_bytes("PNG")
    settings.MEDIA_MAX_BYTES = len(data) - 1
    with pytest.raises(MediaInvalid, match=r"^big\.png: the file has .* bytes, more than the limit .*MEDIA_MAX_BYTES"):
        media_check(data, modality="image", name="big.png")


def test_it_refuses_an_image_over_the_pixel_limit_before_decoding_it(settings):
    settings.MEDIA_MAX_PIXELS = 100
    with pytest.raises(MediaInvalid, match=r"^wide\.png: the image has more than 100 pixels \(MEDIA_MAX_PIXELS\)"):
        media_check(image_bytes("PNG", size=(11, 10)), modality="image", name="wide.png")
    with pytest.raises(MediaInvalid, match="MEDIA_MAX_PIXELS"):  # frames count together
        media_check(animated_gif(size=(6, 6), frames=3), modality="image", name="anim.gif")


def test_a_decompression_bomb_is_refused_from_its_header():
    # A 20,000 x 20,000 PNG of one colour: a few hundred kilobytes that would decode to 1.2 GB.
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, format="PNG")
    with pytest.raises(MediaInvalid, match=r"^bomb\.png: the image has more than 40,000,000 pixels"):
        media_check(out.getvalue(), modality="image", name="bomb.png")


def test_only_image_projects_take_media_for_now():
    with pytest.raises(MediaInvalid, match="text project"):
        media_check(image_bytes("PNG"), modality="text", name="a.png")
    with pytest.raises(MediaInvalid, match="audio media cannot be stored yet"):
        media_check(image_bytes("PNG"), modality="audio", name="a.png")


def test_the_same_bytes_stored_twice_are_one_file(media_root):
    data = image_bytes("PNG")
    first = media_store(data, modality="image", name="a.png")
    second = media_store(data, modality="image", name="copy-of-a.png")
    assert first.created and not second.created and first.name == second.name
    assert (first.mime_type, first.width, first.height) == ("image/png", 8, 6)
    assert stored_files(media_root) == [first.name]
    assert (media_root / first.name).read_bytes() == data


def test_storing_checks_the_bytes_it_was_not_told_about(media_root):
    with pytest.raises(MediaInvalid):
        media_store(b"<svg><script>alert(1)</script></svg>", modality="image", name="x.png")
    checked_other = media_check(image_bytes("PNG"), modality="image", name="ok.png")
    with pytest.raises(MediaInvalid):  # the check was of other bytes: these are checked again
        media_store(b"<html></html>", modality="image", name="x.png", checked=checked_other)
    assert stored_files(media_root) == []


def test_discarding_keeps_files_that_a_candidate_uses(media_root):
    used = media_store(image_bytes("PNG", color=(1, 1, 1)), modality="image", name="used.png")
    orphan = media_store(image_bytes("PNG", color=(2, 2, 2)), modality="image", name="orphan.png")
    prompt = PromptFactory()
    Candidate.objects.create(project=prompt.project, prompt=prompt, external_id="c", media=used.name)
    media_discard([used.name, orphan.name])
    assert stored_files(media_root) == [used.name]
