"""Source generators behind `cdr.CdrCodec`: one decoder and one encoder function per ROS type.

Generated functions take absolute positions in the whole CDR buffer (header included): alignment
`a <= 4` is `(pos + a - 1) & -a`, and 8 is `((pos + 3) & -8) + 4`, because the header is 4 bytes.
"""

from __future__ import annotations

import keyword
import struct
from typing import TYPE_CHECKING, Any

from swarm_bridge.codec.cdr_helpers import ZEROS, helpers
from swarm_bridge.codec.errors import RecordError

if TYPE_CHECKING:
    from swarm_bridge.codec.rosdefs import RosDefinitions, RosField

__all__ = ["PRIMITIVE_CODES", "ZEROS", "AttrEncoder", "Decoder", "Encoder"]

# struct code and size of every fixed-size primitive.
PRIMITIVE_CODES = {
    "bool": ("?", 1), "byte": ("B", 1), "char": ("B", 1), "int8": ("b", 1), "uint8": ("B", 1),
    "int16": ("h", 2), "uint16": ("H", 2), "int32": ("i", 4), "uint32": ("I", 4),
    "int64": ("q", 8), "uint64": ("Q", 8), "float32": ("f", 4), "float64": ("d", 8),
}


class _Gen:
    """Static alignment bookkeeping shared by both directions.

    At run time `pos` (or `len(out)`) plus the static `off` is where the next field goes, and the
    runtime position is known to be aligned to `base` (relative to the header's end). Fixed-size
    fields gather in `run` until a variable-size field forces one struct call (`flush`).
    """

    def __init__(self, types: RosDefinitions, endian: str) -> None:
        self.types, self.endian = types, endian
        self.source: list[str] = []
        self.consts: dict[str, Any] = {"_RecordError": RecordError, "_ZEROS": ZEROS, "_struct": struct}
        self.consts.update(helpers(endian))
        self.done: set[str] = set()
        self.pending: list[str] = []
        self.counter = 0
        self.lines: list[str] = []
        self.off = self.base = self.run_start = 0
        self.run: list[tuple[int, str, str]] = []  # (offset, struct code, value expression)
        self.run_var = ""

    def function(self, name: str, ros_type: str, entry_align: int) -> None:
        """Generate `name` for `ros_type`, then every element function it needs."""
        self.lines, self.run = [], []
        self.off, self.base, self.run_start = 0, entry_align, 0
        self.run_var = self.fresh("r")
        result = self.body(ros_type, "d")
        self.materialize()
        self.finish(name, result)
        while self.pending:
            element = self.pending.pop()
            self.function(f"el_{_ident(element)}", element, entry_align=1)

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"_{prefix}{self.counter}"

    def const(self, value: Any) -> str:
        name = self.fresh("k")
        self.consts[name] = value
        return name

    def emit(self, line: str) -> None:
        self.lines.append("    " + line)

    def element_function(self, ros_type: str) -> str:
        if ros_type not in self.done:
            self.done.add(ros_type)
            self.pending.append(ros_type)
        return f"el_{_ident(ros_type)}"

    def align(self, size: int) -> None:
        if size <= self.base:
            self.off = (self.off + size - 1) & -size
            return
        self.materialize()
        self.emit_align(size)
        self.base = size

    def materialize(self) -> None:
        """Flush the run and move the runtime position up to `off`, which becomes 0."""
        self.flush()
        self.advance()
        self.off = self.run_start = 0

    def struct_format(self, end: int) -> str:
        parts, cursor = [self.endian], self.run_start
        for offset, code, _ in self.run:
            if offset > cursor:
                parts.append(f"{offset - cursor}x")
            parts.append(code)
            cursor = offset + struct.calcsize("<" + code)
        if end > cursor:
            parts.append(f"{end - cursor}x")
        return "".join(parts)

    def item(self, code: str, expression: str = "") -> int:
        """Add a fixed-size item at `off` (already aligned); returns its index among the run's values."""
        index = sum(_values_of(c) for _, c, _ in self.run)
        self.run.append((self.off, code, expression))
        self.off += struct.calcsize("<" + code)
        return index

    def primitive(self, base: str) -> str:
        code, size = PRIMITIVE_CODES[base]
        self.align(size)
        return code

    def body(self, ros_type: str, source: str) -> str:
        fields = self.types.fields(ros_type)
        if not fields:  # rosidl gives an empty message one uint8 member
            self.primitive("uint8")
            self.item("B", "0")
            return "{}"
        return "{" + ", ".join(f"{f.name!r}: {self.field(f, self.access(source, f.name))}" for f in fields) + "}"

    def access(self, source: str, name: str) -> str:
        """Expression reading field `name` of the message held in `source` (a dict here)."""
        return f"{source}[{name!r}]"

    def field(self, f: RosField, access: str) -> str:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def advance(self) -> None:
        raise NotImplementedError

    def emit_align(self, size: int) -> None:
        raise NotImplementedError

    def finish(self, name: str, result: str) -> None:
        raise NotImplementedError


class Decoder(_Gen):
    """`def root(buf, pos) -> (dict, pos)`: reads one message at `pos`."""

    def finish(self, name: str, result: str) -> None:
        self.source += [f"def {name}(buf, pos):", *self.lines, f"    return {result}, pos"]

    def flush(self) -> None:
        if self.run:
            unpack = self.const(struct.Struct(self.struct_format(0)).unpack_from)
            where = f"pos + {self.run_start}" if self.run_start else "pos"
            self.emit(f"{self.run_var} = {unpack}(buf, {where})")
            self.run, self.run_var, self.run_start = [], self.fresh("r"), self.off

    def advance(self) -> None:
        if self.off:
            self.emit(f"pos += {self.off}")

    def emit_align(self, size: int) -> None:
        self.emit("pos = ((pos + 3) & -8) + 4" if size == 8 else f"pos = (pos + {size - 1}) & -{size}")

    def value(self, code: str) -> str:
        index = self.item(code)
        return f"{self.run_var}[{index}]"

    def field(self, f: RosField, access: str) -> str:
        if f.kind == "nested":
            return self.body(f.type, "")
        if f.kind == "base":
            return self.scalar(f.type)
        if f.kind == "array":
            if f.is_message:
                return self.loop(f.type, str(f.size))
            if f.type in ("string", "wstring"):
                return "[" + ", ".join(self.scalar(f.type) for _ in range(f.size)) + "]"
            if f.is_bytes:
                return self.value(f"{f.size}s")
            index = self.item(f"{f.size}{self.primitive(f.type)}")
            return f"list({self.run_var}[{index}:{index + f.size}])"
        self.align(4)
        count = self.value("I")
        self.materialize()
        self.base = 4
        target = self.fresh("v")
        if f.is_message:
            return self.loop(f.type, count)
        if f.type in ("string", "wstring"):
            self.emit(f"{target}, pos = _read_{f.type}s(buf, pos, {count})")
            self.base = 4 if f.type == "wstring" else 1
        elif f.is_bytes:
            self.emit(f"{target} = buf[pos:pos + {count}]")
            self.emit(f"pos += {count}")
            self.base = 1
        else:
            code, size = PRIMITIVE_CODES[f.type]
            if size == 8:
                self.emit(f"if {count}: pos = ((pos + 3) & -8) + 4")
            self.emit(f"{target} = list(_struct.unpack_from('{self.endian}%d{code}' % {count}, buf, pos))")
            self.emit(f"pos += {count} * {size}")
            self.base = min(size, 4)
        return target

    def scalar(self, base: str) -> str:
        if base not in ("string", "wstring"):
            return self.value(self.primitive(base))
        target = self.fresh("v")
        if base == "wstring":
            self.materialize()
            self.emit(f"{target}, pos = _read_wstring(buf, pos)")
            self.base = 4
            return target
        self.align(4)
        length = self.value("I")
        self.materialize()
        end = self.fresh("e")
        self.emit(f"{end} = pos + {length}")
        self.emit(f"if not {length} or buf[{end} - 1]: raise _RecordError('string without its NUL terminator')")
        self.emit(f"{target} = buf[pos:{end} - 1].decode()")
        self.emit(f"pos = {end}")
        self.base = 1
        return target

    def loop(self, ros_type: str, count: str) -> str:
        self.materialize()
        function, target = self.element_function(ros_type), self.fresh("v")
        self.emit(f"{target} = []")
        self.emit(f"for _ in range({count}):")
        self.emit(f"    _x, pos = {function}(buf, pos)")
        self.emit(f"    {target}.append(_x)")
        self.base = 1
        return target


class Encoder(_Gen):
    """`def root(d, out) -> None`: appends one message to the bytearray `out`."""

    def finish(self, name: str, result: str) -> None:
        self.source += [f"def {name}(d, out):", *(self.lines or ["    pass"])]

    def flush(self) -> None:
        if self.run:
            pack = self.const(struct.Struct(self.struct_format(self.off)).pack)
            self.emit(f"out += {pack}({', '.join(expression for _, _, expression in self.run)})")
        elif self.off > self.run_start:
            self.emit(f"out += _ZEROS[{self.off - self.run_start}]")
        self.run, self.run_start = [], self.off

    def advance(self) -> None:
        pass  # flush already wrote everything up to `off`

    def emit_align(self, size: int) -> None:
        self.emit("out += _ZEROS[(4 - len(out)) & 7]" if size == 8 else f"out += _ZEROS[-len(out) & {size - 1}]")

    def field(self, f: RosField, access: str) -> str:
        if f.kind == "nested":
            local = self.fresh("d")
            self.emit(f"{local} = {access}")
            self.body(f.type, local)
        elif f.kind == "base":
            self.scalar(f.type, access, f.str_bound)
        elif f.kind == "array":
            self.array(f, access)
        else:
            self.sequence(f, access)
        return ""

    def scalar(self, base: str, access: str, bound: int) -> None:
        if base == "wstring":
            self.materialize()
            self.emit(f"_write_wstring(out, {access}, {bound})")
            self.base = 4
        elif base == "string":
            encoded = self.fresh("s")
            self.emit(f"{encoded} = {access}.encode()")
            self.emit(f"if b'\\x00' in {encoded}: raise _RecordError('CDR strings cannot contain NUL')")
            if bound:
                self.emit(f"if len({encoded}) > {bound}: raise _RecordError('string longer than {bound} bytes')")
            self.align(4)
            self.item("I", f"len({encoded}) + 1")
            self.materialize()
            self.emit(f"out += {encoded}")
            self.emit("out += b'\\x00'")
            self.base = 1
        else:
            code = self.primitive(base)
            self.item(code, f"_byte({access})" if base == "byte" else access)

    def array(self, f: RosField, access: str) -> None:
        if f.is_bytes:
            self.item(f"{f.size}s", f"_fixed_bytes({access}, {f.size})")
            return
        if not f.is_message and f.type not in ("string", "wstring"):
            self.item(f"{f.size}{self.primitive(f.type)}", f"*{self.items(access)}")
            return
        items = self.fresh("l")
        self.emit(f"{items} = {access}")
        self.emit(f"if len({items}) != {f.size}: raise _RecordError('expected {f.size} items')")
        if f.is_message:
            self.loop(f.type, items)
        else:
            for index in range(f.size):
                self.scalar(f.type, f"{items}[{index}]", f.str_bound)

    def sequence(self, f: RosField, access: str) -> None:
        items = self.fresh("l")
        self.emit(f"{items} = {'_as_bytes(' + access + ')' if f.is_bytes else self.items(access)}")
        if f.size:
            self.emit(f"if len({items}) > {f.size}: raise _RecordError('more than {f.size} items')")
        self.align(4)
        self.item("I", f"len({items})")
        self.materialize()
        self.base = 4
        if f.is_message:
            self.loop(f.type, items)
        elif f.type in ("string", "wstring"):
            self.emit(f"_write_{f.type}s(out, {items}, {f.str_bound})")
            self.base = 4 if f.type == "wstring" else 1
        elif f.is_bytes:
            self.emit(f"out += {items}")
            self.base = 1
        else:
            code, size = PRIMITIVE_CODES[f.type]
            if size == 8:
                self.emit(f"if {items}: out += _ZEROS[(4 - len(out)) & 7]")
            self.emit(f"out += _struct.pack('{self.endian}%d{code}' % len({items}), *{items})")
            self.base = min(size, 4)

    def items(self, access: str) -> str:
        """Expression for the items of an array field, ready for `len()` and `*`."""
        return access

    def loop(self, ros_type: str, items: str) -> None:
        self.materialize()
        self.emit(f"for _x in {items}: {self.element_function(ros_type)}(_x, out)")
        self.base = 1


class AttrEncoder(Encoder):
    """An Encoder reading attributes of message objects (e.g. protobuf messages) instead of dict keys."""

    def access(self, source: str, name: str) -> str:
        return f"getattr({source}, {name!r})" if keyword.iskeyword(name) else f"{source}.{name}"

    def items(self, access: str) -> str:
        return f"{access}[:]"  # a list: upb's repeated containers iterate slowly, slice fast


def _values_of(code: str) -> int:
    """How many values one struct code unpacks to (`36d` -> 36, `16s` -> 1)."""
    return 1 if code.endswith("s") or len(code) == 1 else int(code[:-1])


def _ident(ros_type: str) -> str:
    return ros_type.replace("/", "__")
