# One image for the Python services of the support line: the FastAGI server, the dashboard
# (gunicorn), the metrics exporter and the queue_log follower. docker-compose.yml gives each
# service its command; every setting is an ONERPA_* variable (docs/configuration.md).

# --- build: the project as a wheel (sources, migrations, templates) ------------------------
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY onerpa ./onerpa
COPY ivr ./ivr
COPY dashboard ./dashboard
COPY onerpa_support ./onerpa_support
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- run: the wheel with its dependencies, as an unprivileged user -------------------------
FROM python:3.11.13-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install "$(echo /wheels/onerpa_support-*.whl)[serve]" && rm -rf /wheels
RUN groupadd --system --gid 10001 onerpa \
    && useradd --system --uid 10001 --gid onerpa --create-home --home-dir /home/onerpa onerpa
USER onerpa
WORKDIR /home/onerpa
# FastAGI, dashboard, metrics process, FastAGI's own metrics.
EXPOSE 4573 8080 9464 9465
CMD ["onerpa-support", "--help"]
