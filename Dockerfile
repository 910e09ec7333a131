# Production image: one image for web (gunicorn), worker and beat (celery). See docker-compose.yml.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so the layer is reused while only code changes. The list is the [project]
# dependencies of pyproject.toml (dev extras excluded); the app runs from /app and is not built as a package.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .

# Static files are collected at build time into /app/staticfiles (STATIC_ROOT); the key is build-only.
RUN DJANGO_SECRET_KEY=collectstatic-build-only python manage.py collectstatic --noinput

# Non-root runtime user; /var/lib/scrm holds beat's schedule file (a volume in docker-compose.yml).
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin scrm \
    && mkdir -p /var/lib/scrm \
    && chown scrm:scrm /var/lib/scrm
USER scrm

EXPOSE 8000
CMD ["gunicorn", "scrm.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-", "--forwarded-allow-ips", "*"]
