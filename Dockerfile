# Hookyard in a container, for those who do not deploy to Heroku (compose.yaml runs it with PostgreSQL and Redis).
# Two stages: the first builds every distribution (the core and each plugin, as requirements.txt lists them) into a
# virtual environment; the second is the slim runtime with that environment only, run as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY setup.cfg pyproject.toml requirements.txt ./
COPY platform ./platform
COPY plugins ./plugins
COPY web ./web
RUN python -m venv /venv \
    && /venv/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /app hookyard
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PORT=5000 \
    HOOKYARD_INSTANCE_PATH=/app/instance
WORKDIR /app
# By uid, not name: a platform checking that the image runs unprivileged (runAsNonRoot) can only read a number.
USER 10001
EXPOSE 5000
# The Procfile's web process; compose.yaml runs the worker and the release step from the same image.
CMD ["gunicorn", "-c", "python:hookyard.gunicorn_conf"]
