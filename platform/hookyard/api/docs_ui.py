"""The API docs page (/api/docs): Swagger UI served from this server, so it works offline and loads nothing
from a third party. Its files come from the ``swagger-ui-bundle`` package (pinned in setup.cfg), never copied
into this repository; the page itself is ours so that it can run under a CSP with no inline script."""

from __future__ import annotations

import swagger_ui_bundle
from flask import Blueprint, Response, render_template_string, send_from_directory, url_for
from werkzeug.exceptions import NotFound

blp = Blueprint("api_docs_ui", __name__)

# Only what the page loads: the package also ships source maps and an index.html we do not serve.
ASSETS = frozenset(
    {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "favicon-16x16.png",
        "favicon-32x32.png",
    }
)
ASSET_MAX_AGE = 24 * 3600

# Everything the page needs is on this server. Swagger UI sets inline style attributes and uses data: URIs for
# its icons; 'unsafe-inline' styles cannot run script. connect-src 'self' is the document and "Try it out".
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Hookyard API</title>
  <link rel="icon" href="{{ url_for('api_docs_ui.asset', name='favicon-32x32.png') }}">
  <link rel="stylesheet" href="{{ url_for('api_docs_ui.asset', name='swagger-ui.css') }}">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{{ spec_url }}"></div>
  <script src="{{ url_for('api_docs_ui.asset', name='swagger-ui-bundle.js') }}"></script>
  <script src="{{ url_for('api_docs_ui.asset', name='swagger-ui-standalone-preset.js') }}"></script>
  <script src="{{ url_for('api_docs_ui.init_script') }}"></script>
</body>
</html>
"""

# A file, not an inline script, so the CSP needs no 'unsafe-inline' for scripts. validatorUrl null: Swagger UI
# would otherwise send the document to validator.swagger.io for its badge.
INIT_SCRIPT = """window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout"
  });
});
"""


@blp.route("/api/docs")
def page():
    html = render_template_string(PAGE, spec_url=url_for("api-docs.openapi_json"))
    return Response(html, content_type="text/html; charset=utf-8", headers={"Content-Security-Policy": DOCS_CSP})


@blp.route("/api/docs/init.js")
def init_script():
    return Response(INIT_SCRIPT, content_type="text/javascript; charset=utf-8")


@blp.route("/api/docs/assets/<name>")
def asset(name: str):
    if name not in ASSETS:
        raise NotFound()
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, name, max_age=ASSET_MAX_AGE)
