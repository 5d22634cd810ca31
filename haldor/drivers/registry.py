"""Reader types by name: what each needs in the configuration, which of its keys are
GPIO pins, and where its driver is built. Plain data, so the configuration check reads
it without importing a driver; the driver is imported when the hardware is built.

A new reader type is its driver module (with a ``build(reader, sink, factory)``
function), one entry here, and a line in the README.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from haldor.records import record

from .base import Reader, Sink

#: builds one reader from its configuration (``haldor.config.ReaderConfig``), the sink its
#: reads go to, and the GPIO pin factory
Builder = Callable[[Any, Sink, Any], Reader]


@record
class ReaderType:
    name: str
    #: configuration keys it cannot do without
    needs: tuple[str, ...]
    #: keys that name GPIO pins (each pin is claimed once across the site)
    pins: tuple[str, ...] = ()
    #: ``module:function`` of its builder; None for readers that share a bus (OSDP: built a bus at a time)
    builder: str | None = None

    def build(self, reader: Any, sink: Sink, factory: Any) -> Reader:
        if self.builder is None:
            raise TypeError(f"{self.name} readers are built a bus at a time")
        module, _, name = self.builder.partition(":")
        build: Builder = getattr(importlib.import_module(module), name)
        return build(reader, sink, factory)


READER_TYPES: dict[str, ReaderType] = {
    t.name: t
    for t in (
        ReaderType("serial-line", needs=("port",), builder="haldor.drivers.serial_readers:build_line_reader"),
        ReaderType("rdm6300", needs=("port",), builder="haldor.drivers.serial_readers:build_rdm6300_reader"),
        ReaderType(
            "wiegand", needs=("d0_pin", "d1_pin"), pins=("d0_pin", "d1_pin"), builder="haldor.drivers.wiegand:build_reader"
        ),
        ReaderType("osdp", needs=("port", "scbk_file")),
        # a USB reader that types as a keyboard; port: its /dev/input/by-id/ path
        ReaderType("hid", needs=("port",), builder="haldor.drivers.hid_reader:build_reader"),
    )
}
