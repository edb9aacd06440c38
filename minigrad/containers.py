"""ModuleList and ModuleDict: hold sub-modules by position or by name, as PyTorch's do.

They lean on Module's one rule for finding state ("assign it and it is found"): each entry is
an attribute named by its position ('0', '1', ...) or its key, so state-dict names are
PyTorch's ('layers.0.weight', 'heads.cls.bias'). Neither defines forward: the owner decides.
"""
from collections import OrderedDict

from .nn import Module


def _check_module(container, key, module):
    if not isinstance(module, Module):
        raise TypeError(f"{container} holds Modules, got {type(module).__name__} for entry "
                        f"{key!r}")


class ModuleList(Module):
    """A list of modules: index, slice, iterate, append, extend, insert, del, +, len."""

    def __init__(self, modules=None):
        self._size = 0
        if modules is not None:
            self.extend(modules)

    def _items(self):
        return [getattr(self, str(i)) for i in range(self._size)]

    def _reset(self, modules):
        """Store `modules` as attributes '0'..'n-1' again (after an insert or a delete)."""
        for i in range(self._size):
            delattr(self, str(i))
        self._size = 0
        self.extend(modules)

    def _index(self, i):
        if not -self._size <= i < self._size:
            raise IndexError(f"index {i} is out of range for a ModuleList of {self._size}")
        return i % self._size

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ModuleList(self._items()[i])
        return getattr(self, str(self._index(i)))

    def __setitem__(self, i, module):
        _check_module("ModuleList", i, module)
        setattr(self, str(self._index(i)), module)

    def __delitem__(self, i):
        items = self._items()
        del items[i if isinstance(i, slice) else self._index(i)]
        self._reset(items)           # renumber, as PyTorch does: the names stay 0..n-1

    def __len__(self):
        return self._size

    def __iter__(self):
        return iter(self._items())

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        return ModuleList(self._items() + list(other))

    def append(self, module):
        _check_module("ModuleList", self._size, module)
        setattr(self, str(self._size), module)
        self._size += 1
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        _check_module("ModuleList", index, module)
        items = self._items()
        items.insert(index, module)
        self._reset(items)


class ModuleDict(Module):
    """An ordered dict of modules by name: [key], keys(), values(), items(), update, pop, in."""

    def __init__(self, modules=None):
        self._keys = []
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        if key not in self._keys:
            raise KeyError(f"ModuleDict has no key {key!r} (keys: {self._keys})")
        return getattr(self, key)

    def __setitem__(self, key, module):
        _check_module("ModuleDict", key, module)
        if not isinstance(key, str) or not key or "." in key or key.startswith("_"):
            raise KeyError(f"ModuleDict keys are non-empty strings without '.' that do not "
                           f"start with '_' (private attributes), got {key!r}")
        if key not in self._keys and hasattr(self, key):
            # As PyTorch: a key may not hide an attribute or method of the module itself.
            raise KeyError(f"attribute {key!r} already exists on ModuleDict; pick another key")
        setattr(self, key, module)
        if key not in self._keys:
            self._keys.append(key)

    def __delitem__(self, key):
        self[key]                             # raises the KeyError above for an unknown key
        delattr(self, key)
        self._keys.remove(key)

    def __len__(self):
        return len(self._keys)

    def __iter__(self):
        return iter(list(self._keys))

    def __contains__(self, key):
        return key in self._keys

    def keys(self):
        return list(self._keys)

    def values(self):
        return [getattr(self, k) for k in self._keys]

    def items(self):
        return [(k, getattr(self, k)) for k in self._keys]

    def update(self, modules):
        pairs = modules.items() if isinstance(modules, (dict, OrderedDict, ModuleDict)) \
            else modules
        for key, module in pairs:
            self[key] = module

    def pop(self, key):
        module = self[key]
        del self[key]
        return module

    def clear(self):
        for key in list(self._keys):
            del self[key]
