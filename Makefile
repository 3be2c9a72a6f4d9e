# p2mnote: the two set-up commands of a fresh Debian 12 machine are `make demo` and `make test`.
# Both install the Debian packages they need first (as root; apt-get is skipped when present).

SWIFT ?= swift
DEB_PACKAGES = libelf-dev liblz4-dev libedit-dev libxxhash-dev zlib1g-dev liblzo2-dev libsnappy-dev libzstd-dev makedumpfile pkgconf elfutils binutils lz4 zstd python3-libkdumpfile crash time tmux
DEMO ?= demo

# Real Xen dumps (Tools/real-dump/make), cached outside the clone so a second run reuses them;
# set P2M_REAL_DUMPS=0 to leave them out (RealDumpTests then skip, loudly).
export P2M_REAL_DUMP_DIR ?= /var/cache/p2mnote/real-dumps
P2M_REAL_DUMPS ?= 1
PREFIX ?= /usr/local

.PHONY: deps build release test demo bench clean real-dumps install

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

# A failed qemu boot is retried once; a second failure fails with the serial log's tail.
real-dumps:
	@if [ "$(P2M_REAL_DUMPS)" = 1 ]; then \
	  mkdir -p "$(P2M_REAL_DUMP_DIR)"; \
	  ok() { [ -s "$(P2M_REAL_DUMP_DIR)/dom0.vmcore" ] && [ -s "$(P2M_REAL_DUMP_DIR)/domU.xcore" ]; }; \
	  bash Tools/real-dump/make && ok || { echo "real-dump: first attempt failed; retrying once" >&2; \
	    bash Tools/real-dump/make && ok || { for f in serial.log xl-serial.log; do \
	      echo "== tail of $$f" >&2; tail -40 "$(P2M_REAL_DUMP_DIR)/$$f" >&2 || true; done; exit 1; }; }; \
	fi

test: deps real-dumps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

install: release
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	for t in p2m-emit p2m-inject p2m-analyze p2m-gendump; do install -m 755 .build/release/$$t $(DESTDIR)$(PREFIX)/bin/$$t; done
	mkdir -p .build/man
	$(SWIFT) package --allow-writing-to-directory .build/man generate-manual --multi-page --output-directory .build/man >/dev/null
	for m in .build/man/p2m-emit*.1 .build/man/p2m-inject*.1 .build/man/p2m-analyze*.1 .build/man/p2m-gendump*.1; do \
	  case $$m in *.help.1) ;; *) install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man1/ ;; esac; done

# Build, make a sample Xen dom0 dump, emit the p2m note from it, inject it, analyse the result.
demo: release
	sh Tools/demo.sh $(DEMO)

bench: release
	$(SWIFT) run -c release p2m-bench all

clean:
	rm -rf .build $(DEMO)
