# The shared runtime base of every function image: Node (the active LTS line, 26) and onnxruntime's native library for
# one platform, on an empty file system. Function images add only their bundle and model.
#
# Built by build.ts with the context dist/_runtime (onnxruntime-node pruned to the target platform).
# The full node image carries binutils: strip the debug symbols off node (150 MB -> 117 MB).
ARG NODE_IMAGE=node:26-bookworm
FROM ${NODE_IMAGE} AS node
RUN strip -o /tmp/node /usr/local/bin/node && /tmp/node -e 0
# Models may need a locale (onnxruntime's StringNormalizer builds on en_US.UTF-8), and an empty
# file system has none: compile it here with this image's own localedef, so it matches the glibc
# copied below. Debian's locale sources are installed first where the image lacks them.
RUN if [ ! -e /usr/share/i18n/locales/en_US ]; then \
      apt-get update && apt-get install -y --no-install-recommends locales; \
    fi \
 && localedef -i en_US -f UTF-8 /tmp/en_US.UTF-8

FROM scratch
# Node and the C/C++ libraries it and onnxruntime link against (see `ldd`), from the upstream image.
# Node first: its layer differs per architecture, so the classic builder never reuses another
# platform's layers for this stage (it would, for ARG steps, and then refuse the mix).
COPY --from=node /tmp/node /usr/local/bin/node
ARG LIBDIR=x86_64-linux-gnu
ARG LOADER=/lib64/ld-linux-x86-64.so.2
COPY --from=node ${LOADER} ${LOADER}
COPY --from=node /lib/${LIBDIR}/libc.so.6 /lib/${LIBDIR}/libm.so.6 /lib/${LIBDIR}/libstdc++.so.6 \
     /lib/${LIBDIR}/libgcc_s.so.1 /lib/${LIBDIR}/libdl.so.2 /lib/${LIBDIR}/libpthread.so.0 \
     /lib/${LIBDIR}/librt.so.1 /lib/${LIBDIR}/libatomic.so.1 /lib/${LIBDIR}/
COPY --from=node /tmp/en_US.UTF-8 /usr/lib/locale/en_US.UTF-8
COPY node_modules /app/node_modules
COPY healthcheck.mjs /app/healthcheck.mjs
# Empty, the runtime user's: each function image's build fills it as that user (Node keys the
# cache by user id).
COPY --chown=65532:65532 compile-cache /app/compile-cache
# NODE_COMPILE_CACHE: Node's module compile cache (V8 code cache of every module a start
# compiles), filled by each function image's build and read at every start; worker threads inherit it.
ENV NODE_ENV=production \
    NODE_COMPILE_CACHE=/app/compile-cache \
    MODELFN_HOST=0.0.0.0 \
    PORT=8080 \
    HOME=/tmp \
    ORT_DISABLE_TELEMETRY=1
# distroless's "nonroot" user; nothing is written outside /tmp, so the root file system can be read-only.
USER 65532:65532
WORKDIR /app/function
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/node", "/app/healthcheck.mjs"]
ENTRYPOINT ["/usr/local/bin/node", "/app/function/main.mjs"]
