# One function: its bundle and its model on top of the shared runtime image.
# Built by build.ts with the context dist/<name> (source maps are left out by its .dockerignore).
ARG RUNTIME_IMAGE=modelfn/runtime:latest
FROM ${RUNTIME_IMAGE}
COPY . /app/function/
# One start of the function (a loopback port, one request, stop), as the runtime user, fills Node's
# module compile cache (NODE_COMPILE_CACHE, /app/compile-cache) with the code both its threads
# compile; every later start of the image reads it instead of compiling that code again.
# MODELFN_PRIME_COMPILE_CACHE=false (builder/docker/images.ts, for another architecture) skips it.
ARG MODELFN_PRIME_COMPILE_CACHE=true
RUN ["/usr/local/bin/node", "/app/function/main.mjs", "--prime-compile-cache"]
