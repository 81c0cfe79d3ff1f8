"""The baseline web app: hello world in Flask, served by gunicorn with Hookyard's own web settings
(bench/hello_gunicorn_conf.py), so that a ratio against it measures Hookyard's work per request, not gunicorn's."""

from flask import Flask

app = Flask(__name__)


@app.post("/hook")
def hook():
    return {"status": "accepted"}, 202
