"""JSON through orjson for the labelling hot path (next, submit): the same documents as DRF's JSON renderer and
parser, for less CPU per request."""

import re

import orjson
from rest_framework import renderers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings
from rest_framework.utils import encoders, json

_LINE_SEPARATORS = (b"\xe2\x80\xa8", b"\xe2\x80\xa9")  # U+2028, U+2029 in UTF-8
_LONG_NUMBER = re.compile(rb"[0-9]{19}")


class OrjsonRenderer(renderers.JSONRenderer):
    """DRF's ``JSONRenderer`` output (compact, UTF-8, UTC as ``Z``, U+2028/U+2029 escaped as JavaScript needs),
    written by orjson; values orjson does not know go through DRF's encoder. The one difference in bytes, not in
    meaning: floats with an exponent lose its leading zero (``1e-7``, Python writes ``1e-07``). A client asking for
    indentation gets DRF's own rendering."""

    _default = encoders.JSONEncoder().default

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if self.get_indent(accepted_media_type, renderer_context or {}) is not None:
            return super().render(data, accepted_media_type, renderer_context)
        rendered = orjson.dumps(data, default=self._default, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)
        if _LINE_SEPARATORS[0] in rendered or _LINE_SEPARATORS[1] in rendered:
            rendered = rendered.replace(_LINE_SEPARATORS[0], b"\\u2028").replace(_LINE_SEPARATORS[1], b"\\u2029")
        return rendered


class OrjsonParser(JSONParser):
    """DRF's ``JSONParser`` through orjson for UTF-8 bodies. A body orjson reads differently (it turns integers
    past 64 bits into floats; a run of 19 digits may be one) or refuses is parsed by the standard library as DRF
    would, so every client hears the same."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        body = stream.read() if stream is not None else b""
        if encoding.lower().replace("_", "-") in ("utf-8", "utf8") and not _LONG_NUMBER.search(body):
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        try:
            return json.loads(body.decode(encoding), parse_constant=json.strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


def _replacing(defaults: list, standard: type, fast: type) -> list:
    return [fast if cls is standard else cls for cls in defaults]


HOT_PATH_RENDERERS = _replacing(api_settings.DEFAULT_RENDERER_CLASSES, renderers.JSONRenderer, OrjsonRenderer)
"""The project's renderers with orjson's JSON: what the hot views set as ``renderer_classes``."""
HOT_PATH_PARSERS = _replacing(api_settings.DEFAULT_PARSER_CLASSES, JSONParser, OrjsonParser)
"""The project's parsers with orjson's JSON: what the hot views set as ``parser_classes``."""
