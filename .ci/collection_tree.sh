#!/usr/bin/env bash
# Lay the collection out as ansible_collections/shadowsnap/ec2 under DEST (a copy of the tracked and untracked,
# not ignored files), next to the collections it depends on, for ansible-test and antsibull-docs.
# With --copy-dependencies the dependencies are copied rather than linked (antsibull-docs copies collections with
# git when they sit in a git work tree, and the virtualenv's are in ours, ignored).
set -euo pipefail
dest=$1
site=$2
mode=${3:-}
root=$(git rev-parse --show-toplevel)
rm -rf "$dest"
mkdir -p "$dest/ansible_collections/shadowsnap/ec2" "$dest/ansible_collections/amazon" "$dest/ansible_collections/ansible"
cd "$root"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [[ -e $f && $f != .ci/* ]] && printf '%s\0' "$f"
done | tar --null -cf - -T - | tar -xf - -C "$dest/ansible_collections/shadowsnap/ec2"
for dependency in amazon/aws ansible/windows; do
  if [[ $mode == --copy-dependencies ]]; then
    cp -r "$site/ansible_collections/$dependency" "$dest/ansible_collections/$dependency"
  else
    ln -s "$site/ansible_collections/$dependency" "$dest/ansible_collections/$dependency"
  fi
done
# ansible-test lists a collection's files with git when it sits in a work tree: give the copy its own index.
cd "$dest/ansible_collections/shadowsnap/ec2"
git init -q
git add -A
