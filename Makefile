# p2mnote: the two set-up commands of a fresh Debian 12 machine are `make demo` and `make test`.
# Both install the Debian packages they need first (as root; apt-get is skipped when present).

SWIFT ?= swift
DEB_PACKAGES = libelf-dev liblz4-dev libedit-dev pkgconf elfutils binutils lz4 zstd python3-libkdumpfile crash time tmux
DEMO ?= demo

.PHONY: deps build release test demo bench clean

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# Build, make a sample Xen dom0 dump, emit the p2m note from it, inject it, analyse the result.
demo: release
	sh Tools/demo.sh $(DEMO)

bench: release
	$(SWIFT) run -c release p2m-bench all

clean:
	rm -rf .build $(DEMO)
