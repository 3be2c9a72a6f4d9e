# p2mnote: the two set-up commands of a fresh Debian 12 machine are `make demo` and `make test`.
# Both install the Debian packages they need first (as root; apt-get is skipped when present).

SWIFT ?= swift
DEB_PACKAGES = libelf-dev libdw-dev liblz4-dev libedit-dev libxxhash-dev zlib1g-dev liblzo2-dev libsnappy-dev libzstd-dev makedumpfile pkgconf elfutils binutils lz4 zstd python3-libkdumpfile crash time tmux gcc python3 python3-venv libkdumpfile-dev strace man-db python3-jsonschema
DEMO ?= demo

# Real Xen dumps (Tools/real-dump/make), cached outside the clone so a second run reuses them;
# set P2M_REAL_DUMPS=0 to leave them out (RealDumpTests then skip, loudly).
export P2M_REAL_DUMP_DIR ?= /var/cache/p2mnote/real-dumps
# Debian 13's set (Xen 4.20, Linux 6.12): one boot of Tools/real-dump/make with
# P2M_REAL_DUMP_RELEASE=trixie; RealDumpTests and the Python package's run on both sets.
P2M_REAL_DUMP_DIR_13 ?= /var/cache/p2mnote/real-dumps-13
P2M_REAL_DUMPS ?= 1
PREFIX ?= /usr/local

# The Python package's environment: Debian's python3 (its site packages hold python3-libkdumpfile,
# which the tests compare with) plus drgn from PyPI. Outside the clone's tracked files (.gitignore).
VENV ?= .venv
SYSTEM_PYTHON ?= /usr/bin/python3
DRGN_VERSION ?= 0.3.0

.PHONY: deps build release test demo bench clean real-dumps install venv fuzz

# libFuzzer targets, one per parser (Tools/fuzz): FUZZ_SECONDS each (or until FUZZ_RUNS executions,
# e.g. FUZZ_RUNS=12000000 FUZZ_SECONDS=7200 make fuzz FUZZ_TARGETS=elf-vmcore); CI runs each for a minute.
FUZZ_SECONDS ?= 600
fuzz: deps
	Tools/fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

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

# Tools/real-dump/make boots a stage again when it made no dump or an incomplete record, and after
# the second failure prints the serial log's tail and fails; native does the same for its dump.
real-dumps:
	@if [ "$(P2M_REAL_DUMPS)" = 1 ]; then \
	  mkdir -p "$(P2M_REAL_DUMP_DIR)" "$(P2M_REAL_DUMP_DIR_13)"; \
	  bash Tools/real-dump/make && \
	  P2M_REAL_DUMP_RELEASE=trixie P2M_REAL_DUMP_DIR="$(P2M_REAL_DUMP_DIR_13)" bash Tools/real-dump/make && \
	  { bash Tools/real-dump/native || { echo "real-dump: the native (non-Xen) vmcore failed; retrying once" >&2; \
	    bash Tools/real-dump/native; }; }; \
	fi

venv:
	@test -x $(VENV)/bin/python || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	@$(VENV)/bin/python -c 'import drgn, sys; sys.exit(drgn.__version__ != "$(DRGN_VERSION)")' 2>/dev/null || \
	  $(VENV)/bin/pip install -q "drgn==$(DRGN_VERSION)"
	@$(VENV)/bin/python -c 'import p2mnote' 2>/dev/null || $(VENV)/bin/pip install -q -e python/

# Each phase says how long it took ("== phase NAME: N s"), the figures Tools/real-dump/README's
# time budget is kept from.
PHASE = Tools/phase
test:
	@$(PHASE) deps $(MAKE) --no-print-directory deps
	@$(PHASE) real-dumps $(MAKE) --no-print-directory real-dumps
	@$(PHASE) venv $(MAKE) --no-print-directory venv
	@$(PHASE) swift-build $(SWIFT) build --build-tests
	@P2M_REAL_DUMP_OTHER_DIR=$(P2M_REAL_DUMP_DIR_13) $(PHASE) swift-test $(SWIFT) test --skip-build
	@P2M_REAL_DUMP_DIR=$(P2M_REAL_DUMP_DIR_13) P2M_REAL_DUMP_OTHER_DIR=$(P2M_REAL_DUMP_DIR) P2M_REAL_DUMP_SECOND_SET=1 $(PHASE) swift-test-debian13 $(SWIFT) test --skip-build --filter RealDumpTests
	@P2MNOTE_LIBRARY=$(CURDIR)/.build/debug/libp2mnote.so $(PHASE) python-test $(VENV)/bin/python -m unittest discover -s python/tests -v
	@P2M_REAL_DUMP_DIR=$(P2M_REAL_DUMP_DIR_13) P2MNOTE_LIBRARY=$(CURDIR)/.build/debug/libp2mnote.so $(PHASE) python-test-debian13 $(VENV)/bin/python -m unittest discover -s python/tests -p test_real_dumps.py -v
	@$(PHASE) fuzz Tools/fuzz/run 60

# PREFIX/lib/libp2mnote.so (the Swift runtime linked in), PREFIX/include/p2mnote.h, a pkg-config
# file, and the Python package in PREFIX/lib/python3.N/dist-packages (on sys.path for /usr/local) with a link to the library
# beside it, so that neither C nor Python callers need LD_LIBRARY_PATH.
PYDIR = $(PREFIX)/lib/python3.$(shell $(SYSTEM_PYTHON) -c "import sys; print(sys.version_info[1])" 2>/dev/null || echo 11)/dist-packages
install: release
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	for t in p2m-emit p2m-inject p2m-analyze p2m-extract p2m-gendump; do install -m 755 .build/release/$$t $(DESTDIR)$(PREFIX)/bin/$$t; done
	install -m 755 .build/release/libp2mnote.so $(DESTDIR)$(PREFIX)/lib/libp2mnote.so
	install -m 644 Sources/CP2MNote/include/p2mnote.h $(DESTDIR)$(PREFIX)/include/p2mnote.h
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: p2mnote\nDescription: read Xen PV guest crash dumps (p2mnote)\nVersion: %s\nLibs: -L$${libdir} -Wl,-rpath,$${libdir} -lp2mnote\nCflags: -I$${includedir}\n' \
	  "$(PREFIX)" "$$(sed -n 's/^version = "\(.*\)"/\1/p' python/pyproject.toml)" > $(DESTDIR)$(PREFIX)/lib/pkgconfig/p2mnote.pc
	install -d $(DESTDIR)$(PYDIR)/p2mnote
	install -m 644 python/p2mnote/*.py $(DESTDIR)$(PYDIR)/p2mnote/
	ln -sf $(PREFIX)/lib/libp2mnote.so $(DESTDIR)$(PYDIR)/p2mnote/libp2mnote.so
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi
	Tools/man/make .build/man
	for m in .build/man/p2m-emit*.1 .build/man/p2m-inject*.1 .build/man/p2m-analyze*.1 .build/man/p2m-extract*.1 .build/man/p2m-gendump*.1; do \
	  case $$m in *.help.1) ;; *) install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man1/ ;; esac; done

# Build, make a sample Xen dom0 dump, emit the p2m note from it, inject it, analyse the result.
demo: release
	sh Tools/demo.sh $(DEMO)

bench: release venv
	$(SWIFT) run -c release p2m-bench all
	@# drgn's for_each_task on the real Xen dom0 dump through libp2mnote vs on a native vmcore.
	P2MNOTE_LIBRARY=$(CURDIR)/.build/release/libp2mnote.so $(VENV)/bin/python python/bench/for_each_task.py

clean:
	rm -rf .build $(DEMO)
