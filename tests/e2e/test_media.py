"""Image and audio candidates: a shared zoom and boxes on images; a shared
transport, time ranges and a loudness readout on audio. Media are served from
the storage's files (routed by the browser here: the test server serves no media)."""

import io
import math
import struct
import wave
import zlib
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from annotation.models import Candidate, Comparison, Judgment, Prompt

from .conftest import shot, shown_order, sign_in


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _serve_media(page, root: Path) -> None:
    def fulfil(route, request):
        data = (root / request.url.split("/media/", 1)[1]).read_bytes()
        ranged = request.headers.get("range", "").removeprefix("bytes=")
        if not ranged:
            route.fulfill(body=data, headers={"Accept-Ranges": "bytes"})
            return
        first, _, last = ranged.partition("-")  # media elements seek with byte ranges
        start, end = int(first or 0), int(last) if last else len(data) - 1
        route.fulfill(
            status=206,
            body=data[start : end + 1],
            headers={"Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{end}/{len(data)}"},
        )

    page.route("**/media/**", fulfil)


def _png(rgb: tuple[int, int, int], width: int = 200, height: int = 100) -> bytes:
    """A flat-coloured PNG, written by hand (no imaging library in the app's dependencies)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _wav(amplitude: float, seconds: float = 1.0, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = (int(amplitude * 32767 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate)))
        w.writeframes(b"".join(struct.pack("<h", f) for f in frames))
    return out.getvalue()


def _media_comparison(project, files: list[tuple[str, bytes, str]]) -> Comparison:
    prompt = Prompt.objects.create(project=project, external_id="m1", text="Which is better?")
    candidates = []
    for i, (name, data, mime) in enumerate(files):
        candidate = Candidate(project=project, prompt=prompt, external_id=f"m1-{i}", mime_type=mime)
        candidate.media.save(name, ContentFile(data), save=True)
        candidates.append(candidate)
    comparison = Comparison.objects.create(
        project=project, prompt=prompt, external_id="cmp-m1", candidate_ids=[c.pk for c in candidates], wanted=1
    )
    return comparison


def test_image_candidates_share_the_zoom_and_take_boxes(page, people, media_root):
    project, users = people
    project.modality = "image"
    project.save()
    red, blue = _png((220, 40, 40)), _png((40, 40, 220))
    _media_comparison(project, [("red.png", red, "image/png"), ("blue.png", blue, "image/png")])
    _serve_media(page, media_root)
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("task").wait_for()
    canvas = page.get_by_test_id("candidate-1").locator(".image-canvas")
    canvas.locator("img").wait_for()
    page.wait_for_function("[...document.querySelectorAll('.image-canvas img')].every(i => i.naturalWidth)")
    box = canvas.bounding_box()
    # Draw from 10 %, 20 % to 60 %, 70 % of the image.
    page.mouse.move(box["x"] + 0.1 * box["width"], box["y"] + 0.2 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.7 * box["height"], steps=5)
    page.mouse.up()
    page.get_by_test_id("span-picker").wait_for()
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    assert page.get_by_test_id("span-item").count() == 1

    zoom = page.get_by_role("button", name="zoom in (all images)")
    zoom.first.click()
    assert page.get_by_role("button", name="zoom out (all images)").count() == 2  # both images zoomed
    page.get_by_test_id("candidate-2").locator(".image-canvas img").click()  # a click on an image zooms too
    assert page.get_by_role("button", name="zoom in (all images)").count() == 2
    zoom.first.click()
    shot(page, "workbench-image")
    shown = shown_order(page)
    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")
    page.get_by_test_id("queue-empty").wait_for()

    judgment = Judgment.objects.get(annotator=users["anna"])
    assert judgment.winner_id == shown[1]
    (span,) = judgment.spans.all()
    assert span.candidate_id == shown[0] and span.category == "incorrect" and span.start is None
    assert span.box == pytest.approx([0.1, 0.2, 0.5, 0.5], abs=0.02)


def test_audio_candidates_share_one_transport_show_loudness_and_take_time_ranges(page, people, media_root):
    project, users = people
    project.modality = "audio"
    project.save()
    _media_comparison(project, [("loud.wav", _wav(0.5), "audio/wav"), ("quiet.wav", _wav(0.1), "audio/wav")])
    _serve_media(page, media_root)
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("task").wait_for()
    # A sine of amplitude a has an RMS of a/√2: 0.5 → -9.0 dBFS, 0.1 → -23.0 dBFS.
    levels = page.locator(".loudness")
    page.wait_for_function("[...document.querySelectorAll('.loudness')].every(e => e.textContent.includes('dBFS'))")
    assert sorted(levels.all_text_contents()) == ["Loudness: -23.0 dBFS RMS", "Loudness: -9.0 dBFS RMS"]

    # A/B: one player is heard, the other follows muted; switching keeps the position.
    assert page.locator("audio").evaluate_all("a => a.map(p => p.muted)") == [False, True]
    page.get_by_test_id("candidate-2").get_by_role("button", name="Listen to Candidate B").click()
    assert page.locator("audio").evaluate_all("a => a.map(p => p.muted)") == [True, False]
    assert page.get_by_test_id("candidate-2").get_by_role("button", name="Hearing Candidate B").count() == 1

    players = page.locator("audio")
    page.wait_for_function("[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)")
    players.nth(0).evaluate("a => { a.currentTime = 0.2 }")
    page.wait_for_function("Math.abs(document.querySelectorAll('audio')[1].currentTime - 0.2) < 0.01")  # followed
    first = page.get_by_test_id("candidate-1")
    first.get_by_role("button", name="Mark from here").click()
    players.nth(1).evaluate("a => { a.currentTime = 0.7 }")  # the other player moves both
    page.wait_for_function("Math.abs(document.querySelectorAll('audio')[0].currentTime - 0.7) < 0.01")
    first.get_by_role("button", name="…to here").click()
    page.get_by_test_id("span-picker").wait_for()
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    shot(page, "workbench-audio")
    shown = shown_order(page)
    page.keyboard.press("t")
    page.keyboard.press("Control+Enter")
    page.get_by_test_id("queue-empty").wait_for()

    judgment = Judgment.objects.get(annotator=users["anna"])
    assert judgment.tie
    (span,) = judgment.spans.all()
    assert (span.candidate_id, span.category) == (shown[0], "irrelevant")
    assert (span.start, span.end) == (pytest.approx(0.2, abs=0.01), pytest.approx(0.7, abs=0.01))


# Records a small WebM in the browser itself (no ffmpeg here): a canvas whose colour
# changes every frame, captured at 25 fps by MediaRecorder, returned base64-encoded.
RECORD_WEBM_JS = """
async (seconds) => {
  const canvas = document.createElement("canvas");
  canvas.width = 160; canvas.height = 90;
  document.body.appendChild(canvas);
  const context = canvas.getContext("2d");
  const recorder = new MediaRecorder(canvas.captureStream(25), { mimeType: "video/webm;codecs=vp8" });
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const stopped = new Promise((resolve) => (recorder.onstop = resolve));
  recorder.start();
  const start = performance.now();
  await new Promise((resolve) => {
    const draw = () => {
      const t = (performance.now() - start) / 1000;
      context.fillStyle = `hsl(${Math.round(t * 240)}, 80%, 50%)`;
      context.fillRect(0, 0, canvas.width, canvas.height);
      if (t < seconds) requestAnimationFrame(draw); else resolve();
    };
    draw();
  });
  recorder.stop();
  await stopped;
  const bytes = new Uint8Array(await new Blob(chunks, { type: "video/webm" }).arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
  return btoa(binary);
}
"""


def _webm(page, seconds: float = 2.0) -> bytes:
    import base64

    page.set_content("<!doctype html><title>recorder</title>")
    return base64.b64decode(page.evaluate(RECORD_WEBM_JS, seconds))


def _videos(page, expression: str):
    return page.locator("video").evaluate_all(f"vs => vs.map(v => {expression})")


def test_video_candidates_share_play_pause_seek_speed_and_frame_steps(page, people, media_root):
    project, users = people
    project.modality = "video"
    project.save()
    clip = _webm(page)
    assert clip[:4] == b"\x1a\x45\xdf\xa3"  # an EBML (WebM) header
    _media_comparison(project, [("a.webm", clip, "video/webm"), ("b.webm", clip, "video/webm")])
    _serve_media(page, media_root)
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("task").wait_for()
    page.wait_for_function("[...document.querySelectorAll('video')].every(v => v.readyState >= 1)")
    assert page.locator("video").count() == 2
    # A click is the user gesture that lets Chromium play sound; B becomes the one heard.
    page.get_by_test_id("candidate-2").get_by_role("button", name="Listen to Candidate B").click()
    assert _videos(page, "v.muted") == [True, False]

    # Play on one plays both; pause on the other pauses both.
    page.locator("video").nth(0).evaluate("v => v.play()")
    page.wait_for_function("[...document.querySelectorAll('video')].every(v => !v.paused)")
    page.locator("video").nth(1).evaluate("v => v.pause()")
    page.wait_for_function("[...document.querySelectorAll('video')].every(v => v.paused)")

    # Seek on either moves both.
    page.locator("video").nth(0).evaluate("v => { v.currentTime = 0.5 }")
    page.wait_for_function("Math.abs(document.querySelectorAll('video')[1].currentTime - 0.5) < 0.01")
    page.locator("video").nth(1).evaluate("v => { v.currentTime = 1.2 }")
    page.wait_for_function("Math.abs(document.querySelectorAll('video')[0].currentTime - 1.2) < 0.01")

    # Speed follows.
    page.locator("video").nth(1).evaluate("v => { v.playbackRate = 1.5 }")
    page.wait_for_function("document.querySelectorAll('video')[0].playbackRate === 1.5")

    # Frame steps (1/25 s) on one player move both, forward and back.
    page.get_by_role("button", name="Candidate A: one frame on").click()
    page.wait_for_function("[...document.querySelectorAll('video')].every(v => Math.abs(v.currentTime - 1.24) < 0.005)")
    page.get_by_role("button", name="Candidate B: one frame back").click()
    page.get_by_role("button", name="Candidate B: one frame back").click()
    page.wait_for_function("[...document.querySelectorAll('video')].every(v => Math.abs(v.currentTime - 1.16) < 0.005)")
    shot(page, "workbench-video")

    # A time range marked on the video lands in the judgment.
    first = page.get_by_test_id("candidate-1")
    first.get_by_role("button", name="Mark from here").click()
    page.locator("video").nth(0).evaluate("v => { v.currentTime = 1.5 }")
    page.wait_for_function("Math.abs(document.querySelectorAll('video')[1].currentTime - 1.5) < 0.01")
    first.get_by_role("button", name="…to here").click()
    page.get_by_test_id("span-picker").wait_for()
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    shown = shown_order(page)
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.get_by_test_id("queue-empty").wait_for()
    judgment = Judgment.objects.get(annotator=users["anna"])
    assert judgment.winner_id == shown[0]
    (span,) = judgment.spans.all()
    assert span.candidate_id == shown[0]
    assert (span.start, span.end) == (pytest.approx(1.16, abs=0.01), pytest.approx(1.5, abs=0.01))


def test_an_annotator_judges_generated_images_pushed_by_a_round(page, people, media_root, tmp_path_factory):
    """Images a generator made and training pushed through annotation's door (stored by content, served from
    storage): compared, zoomed, boxed and submitted like any other."""
    from annotation.candidates import GeneratedCandidate, GeneratedComparison, generated_comparisons_push
    from tests.training.synthetic_diffusion import build_tiny_class_conditional
    from training.ml.generation.diffusion import load_image_generator

    project, users = people
    project.modality = "image"
    project.save()
    generator = load_image_generator(build_tiny_class_conditional(tmp_path_factory.mktemp("gen") / "g"))
    [images] = generator.generate(["a handwritten 7"], k=2, num_inference_steps=2)
    prompt = Prompt.objects.create(project=project, external_id="d7", text="a handwritten 7")
    origin = {"round": 1, "policy_version": 1}
    generated_comparisons_push(
        project=project,
        batch="round-1",
        comparisons=[
            GeneratedComparison(
                prompt_id=prompt.pk,
                candidates=[
                    GeneratedCandidate(text="", media=i.png, origin={**origin, "seed": i.seed}) for i in images
                ],
                priority=5,
                origin={**origin, "purpose": "active"},
            )
        ],
    )
    _serve_media(page, media_root)
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("task").wait_for()
    page.wait_for_function("[...document.querySelectorAll('.image-canvas img')].every(i => i.naturalWidth)")
    canvas = page.get_by_test_id("candidate-2").locator(".image-canvas")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 0.25 * box["width"], box["y"] + 0.25 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.75 * box["width"], box["y"] + 0.5 * box["height"], steps=5)
    page.mouse.up()
    page.get_by_test_id("span-picker").wait_for()
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="zoom in (all images)").first.click()
    assert page.get_by_role("button", name="zoom out (all images)").count() == 2
    shot(page, "workbench-generated-images")
    shown = shown_order(page)
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.get_by_test_id("queue-empty").wait_for()

    judgment = Judgment.objects.get(annotator=users["anna"])
    assert judgment.winner_id == shown[0] and judgment.shown_order == shown
    (span,) = judgment.spans.all()
    assert (span.candidate_id, span.category) == (shown[1], "irrelevant")
    assert span.box == pytest.approx([0.25, 0.25, 0.5, 0.25], abs=0.02)
