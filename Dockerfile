# The inspection service: ONNX Runtime + FastAPI, no torch (the `train` extra is not installed).
#   docker build -t returns-inspection .
#   docker run -p 8000:8000 -e RETURNS_API_KEYS="change-me-station:station,change-me-admin:admin" \
#       -v returns-data:/data returns-inspection
# Without RETURNS_API_KEYS the container refuses to start: it listens on 0.0.0.0, not loopback.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RETURNS_DATA_DIR=/data \
    RETURNS_BUNDLE_DIR=/app/models/default

# libgomp: ONNX Runtime's and OpenCV's thread pools; libglib: OpenCV's image codecs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
COPY inspection ./inspection
COPY training ./training
RUN pip install ".[postgres]"
COPY models ./models

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin inspector \
    && mkdir -p /data && chown inspector /data
USER inspector
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"

CMD ["returns-inspect", "serve", "--host", "0.0.0.0", "--port", "8000"]
