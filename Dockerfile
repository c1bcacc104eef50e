# Minimal image: build a wheel, install it into a slim runtime. Health checks,
# the daemon's default command and the state volume come with the daemon.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tailer ./tailer
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin tailer
USER 10001
ENTRYPOINT ["runtools-tail"]
CMD ["--help"]
