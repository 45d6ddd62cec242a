# One function: its bundle and its model on top of the shared runtime image.
# Built by build.ts with the context dist/<name> (source maps are left out by its .dockerignore).
ARG RUNTIME_IMAGE=modelfn/runtime:latest
FROM ${RUNTIME_IMAGE}
COPY . /app/function/
