"""The network of the original suite: a 3-layer quantized MLP for MNIST."""
import chainer_compat  # noqa: F401  (before chainer: NumPy 2)
import chainer
import chainer.functions as F
import chainer.links as L

from link_quantized_linear import QuantizedLinear
from qst import qst


class MnistMLP(chainer.Chain):
    """``n_in - n_units - n_units - n_out`` MLP, quantized as the original.

    .. math::

        h_1 &= \\mathrm{relu}(\\mathrm{qst}(\\mathrm{BN}_1(\\mathrm{QL}_1(x)))) \\\\
        h_2 &= \\mathrm{relu}(\\mathrm{qst}(\\mathrm{BN}_2(\\mathrm{QL}_2(h_1)))) \\\\
        y &= \\mathrm{BN}_3(\\mathrm{QL}_3(h_2))

    The logits are batch-normalised too, which bounds how confident the
    softmax can get: the training loss settles near 0.32 rather than 0.

    Args:
        n_in (int): Input size (784 for MNIST).
        n_units (int): Units in each hidden layer.
        n_out (int): Number of classes.
    """

    def __init__(self, n_in, n_units, n_out):
        super(MnistMLP, self).__init__()
        with self.init_scope():
            self.l1 = QuantizedLinear(n_in, n_units)
            self.b1 = L.BatchNormalization(n_units)
            self.l2 = QuantizedLinear(n_units, n_units)
            self.b2 = L.BatchNormalization(n_units)
            self.l3 = QuantizedLinear(n_units, n_out)
            self.b3 = L.BatchNormalization(n_out)

    def forward(self, x):
        h = F.relu(qst(self.b1(self.l1(x))))
        h = F.relu(qst(self.b2(self.l2(h))))
        return self.b3(self.l3(h))
