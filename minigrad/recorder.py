"""Record per-layer activations and gradients during training, without changing it.

    rec = Recorder(model, [nn.Linear, nn.BatchNorm1d])    # layer types, or a list of names
    loss = F.cross_entropy(model(x), y); loss.backward()
    rec.activations["0"], rec.gradients["0"]                # NumPy copies of the last step
    rec.remove()

Forward hooks copy each chosen layer's output; `retain_grad()` on that output keeps dL/d(output)
for reading after backward. Nothing is written back into the model, so training is unchanged.
"""
from . import backend


class Recorder:
    def __init__(self, model, layers=None):
        """layers: None (every leaf module), a list of Module classes, or a list of names."""
        self._handles = []
        self.activations, self.gradients = {}, {}
        self._outputs = {}
        for name, module in model.named_modules():
            name = name or type(module).__name__
            if not self._wanted(name, module, layers):
                continue
            self._handles.append(module.register_forward_hook(self._hook(name)))

    @staticmethod
    def _wanted(name, module, layers):
        if layers is None:
            return not module.children()
        return any(name == l if isinstance(l, str) else isinstance(module, l) for l in layers)

    def _hook(self, name):
        def hook(module, inputs, output):
            self.activations[name] = backend.to_numpy(output.data).copy()
            if output.requires_grad:
                output.retain_grad()
                self._outputs[name] = output
        return hook

    def collect_gradients(self):
        """Copy dL/d(output) of every recorded layer (call after loss.backward())."""
        for name, out in self._outputs.items():
            if out.grad is not None:
                self.gradients[name] = backend.to_numpy(out.grad).copy()
        self._outputs = {}
        return self.gradients

    def remove(self):
        """Detach the hooks; the model is exactly as it was before."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
