"""Gives a Go (GOOS=wasip1) core module a `cabi_realloc_adapter` export.

    python3 add-adapter-realloc.py <in.wasm> <out.wasm>

wit-component hands the WASI preview1 adapter the main module's
`cabi_realloc_adapter` export, when there is one, for the adapter's own stack
and state. The adapter first asks while the Go runtime is still starting,
when no Go export may run, so this function is plain WebAssembly added to
the module: a bump allocator over `adapterArena`, a byte array of the sdk
package (adapter_arena_wasip1.go) that the Go runtime never touches. Its
address and size are read from `adapterLocator`, static data found by the
marker it starts with.

Only appends to the module (a type, a global, a function, an export): no
existing index changes. Standard library only.
"""

import sys

MARKER = b"batchllm/sdk-go/adapter-arena/v1"
EXPORT_NAME = b"cabi_realloc_adapter"


def fail(message):
    sys.stderr.write("add-adapter-realloc: %s\n" % message)
    sys.exit(1)


def uleb(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def sleb(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        done = (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40)
        out.append(byte if done else byte | 0x80)
        if done:
            return bytes(out)


def read_uleb(data, pos):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def read_sleb(data, pos):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result, pos


def sections(module):
    """(id, payload) of every section, in order."""
    if module[:8] != b"\0asm\x01\0\0\0":
        fail("not a core WebAssembly module")
    out, pos = [], 8
    while pos < len(module):
        sid = module[pos]
        size, pos = read_uleb(module, pos + 1)
        out.append([sid, module[pos : pos + size]])
        pos += size
    return out


def vector(payload):
    """The count of a vector section and the bytes of its entries."""
    count, pos = read_uleb(payload, 0)
    return count, payload[pos:]


def imported_counts(payload):
    """How many functions and globals the import section imports."""
    count, pos = read_uleb(payload, 0)
    funcs = globals_ = 0
    for _ in range(count):
        for _ in range(2):  # module and field names
            n, pos = read_uleb(payload, pos)
            pos += n
        kind = payload[pos]
        pos += 1
        if kind == 0x00:  # func: type index
            _, pos = read_uleb(payload, pos)
            funcs += 1
        elif kind == 0x01:  # table: reftype, limits
            pos += 1
            flags, pos = read_uleb(payload, pos)
            _, pos = read_uleb(payload, pos)
            if flags & 1:
                _, pos = read_uleb(payload, pos)
        elif kind == 0x02:  # memory: limits
            flags, pos = read_uleb(payload, pos)
            _, pos = read_uleb(payload, pos)
            if flags & 1:
                _, pos = read_uleb(payload, pos)
        elif kind == 0x03:  # global: valtype, mutability
            pos += 2
            globals_ += 1
        else:
            fail("unsupported import kind %d" % kind)
    return funcs, globals_


def memory_image(payload):
    """The initial contents of memory 0 given by the data section's active
    segments, as {address: bytes}."""
    count, pos = read_uleb(payload, 0)
    segments = {}
    for _ in range(count):
        flags, pos = read_uleb(payload, pos)
        if flags == 1:  # passive
            n, pos = read_uleb(payload, pos)
            pos += n
            continue
        if flags == 2:
            _, pos = read_uleb(payload, pos)  # memory index
        elif flags != 0:
            fail("unsupported data segment flags %d" % flags)
        if payload[pos] != 0x41:  # i32.const
            fail("data segment offset is not an i32.const")
        offset, pos = read_sleb(payload, pos + 1)
        if payload[pos] != 0x0B:
            fail("data segment offset is not a constant expression")
        n, pos = read_uleb(payload, pos + 1)
        segments[offset] = payload[pos : pos + n]
        pos += n
    return segments


def read_memory(segments, address, n):
    """n bytes of the initial memory at address (zero where no segment is)."""
    out = bytearray(n)
    for offset, data in segments.items():
        lo, hi = max(address, offset), min(address + n, offset + len(data))
        if lo < hi:
            out[lo - address : hi - address] = data[lo - offset : hi - offset]
    return bytes(out)


def find_arena(payload):
    """(start, size) of the arena, read from the locator after the marker."""
    segments = memory_image(payload)
    found = [offset + i for offset, data in segments.items() for i in find_all(data, MARKER)]
    if len(found) != 1:
        fail("expected the adapter arena's marker once in the data section, found it %d times "
             "(is the module built with the batchllm sdk?)" % len(found))
    fields = read_memory(segments, found[0] + len(MARKER), 16)
    start, size = int.from_bytes(fields[:8], "little"), int.from_bytes(fields[8:], "little")
    if start == 0 or size == 0 or start + size >= 1 << 31:
        fail("the adapter arena's locator is not filled in (start %#x, size %d)" % (start, size))
    return start, size


def find_all(data, needle):
    i = data.find(needle)
    while i >= 0:
        yield i
        i = data.find(needle, i + 1)


def realloc_body(global_index, arena_end, arena_size):
    """cabi_realloc_adapter(old_ptr, old_size, align, new_size) -> ptr.

    p = (next + align - 1) & -align; traps when the adapter asks to grow an
    allocation (it never does) or the arena is exhausted; next = p + size.
    """
    g = uleb(global_index)
    code = b"".join([
        b"\x20\x00\x04\x40\x00\x0b",  # if old_ptr != 0: unreachable
        b"\x20\x03\x41" + sleb(arena_size) + b"\x4b\x04\x40\x00\x0b",  # if new_size > size: unreachable
        b"\x23" + g + b"\x20\x02\x6a\x41\x01\x6b",  # next + align - 1
        b"\x41\x00\x20\x02\x6b\x71",  # & -align
        b"\x21\x04",  # local.set p
        b"\x20\x04\x20\x03\x6a",  # p + new_size
        b"\x41" + sleb(arena_end) + b"\x4b\x04\x40\x00\x0b",  # > end: unreachable
        b"\x20\x04\x20\x03\x6a\x24" + g,  # next = p + new_size
        b"\x20\x04\x0b",  # return p
    ])
    body = b"\x01\x01\x7f" + code  # one local (p: i32)
    return uleb(len(body)) + body


def append_entry(section, entry):
    count, rest = vector(section[1])
    section[1] = uleb(count + 1) + rest + entry
    return count


def main():
    if len(sys.argv) != 3:
        fail("usage: add-adapter-realloc.py <in.wasm> <out.wasm>")
    with open(sys.argv[1], "rb") as f:
        module = f.read()
    secs = sections(module)
    by_id = {}
    for s in secs:
        if s[0] != 0:
            by_id.setdefault(s[0], s)
    for sid, name in [(1, "type"), (2, "import"), (3, "function"), (6, "global"), (7, "export"), (10, "code"), (11, "data")]:
        if sid not in by_id:
            fail("the module has no %s section" % name)
    if EXPORT_NAME in by_id[7][1]:
        fail("the module already exports %s" % EXPORT_NAME.decode())

    arena, size = find_arena(by_id[11][1])
    start = (arena + 15) & ~15
    end = arena + size
    if end - start < 64 << 10:
        fail("the adapter arena is too small (%d bytes)" % size)

    funcs_imported, globals_imported = imported_counts(by_id[2][1])
    type_index = append_entry(by_id[1], b"\x60\x04\x7f\x7f\x7f\x7f\x01\x7f")
    func_index = funcs_imported + append_entry(by_id[3], uleb(type_index))
    global_index = globals_imported + append_entry(by_id[6], b"\x7f\x01\x41" + sleb(start) + b"\x0b")
    append_entry(by_id[10], realloc_body(global_index, end, end - start))
    append_entry(by_id[7], uleb(len(EXPORT_NAME)) + EXPORT_NAME + b"\x00" + uleb(func_index))

    out = bytearray(module[:8])
    for sid, payload in secs:
        out += bytes([sid]) + uleb(len(payload)) + payload
    with open(sys.argv[2], "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
