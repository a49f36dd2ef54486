# wsgate in a container: a slim Python base, installed from this source tree, run as an
# unprivileged user, with a health check on the admin listener's /healthz.
#
#   docker build -t wsgate .
#   docker run --rm -p 8080:8080 -e WSGATE_UPSTREAMS=app:9000 wsgate
#   docker run --rm -p 8080:8080 -v $PWD/wsgate.toml:/etc/wsgate/wsgate.toml:ro \
#       -e WSGATE_CONFIG=/etc/wsgate/wsgate.toml -e WSGATE_LISTEN= wsgate
#
# WSGATE_LISTEN (0.0.0.0:8080 here) replaces a config file's [server] listen: set it empty
# to keep the file's (TLS listeners included). `docker stop` sends SIGTERM: the gateway
# drains at its pace, so give it --stop-timeout of drain_timeout_s plus a few seconds.
# `docker kill -s HUP` reloads the config.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python -m pip install --no-cache-dir --upgrade pip \
    && python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 wsgate \
    && useradd --system --uid 10001 --gid wsgate --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin wsgate
ENV PYTHONUNBUFFERED=1 \
    WSGATE_LISTEN=0.0.0.0:8080 \
    WSGATE_ADMIN=127.0.0.1:9180
USER wsgate:wsgate
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://' + os.environ['WSGATE_ADMIN'] + '/healthz', timeout=2)"]
ENTRYPOINT ["wsgate"]
CMD ["serve"]
