"""The CUDA forms: one CuPy elementwise kernel for each quantizer function,
giving the bits of the CPU forms.

CuPy compiles every kernel with ``-ftz=true``: every float operation
turns a subnormal operand or result into 0. So each kernel decides on the
float's bit pattern with integer operations, and does float arithmetic
only where a comment shows that flushing cannot change its result. The
tests compile these sources for the host with flushing on and compare
them bit for bit with the CPU forms, and check that the PTX of the
integer-only kernels holds no float instruction.

Each function takes CuPy arrays and the scalars of its rule, as
:mod:`~quantized_net.quantization.kernels` passes them, and returns a new
array of the input's shape. A quantizer's kernel has a rectified form,
its output then rectified as Chainer's ``relu`` rectifies it, in the same
launch.
"""
import numpy

from chainer.backends import cuda

from quantized_net.quantization.float32_layout import (
    CUDA_CONSTANTS, float32_bits, scale_shift)

#: Each kernel as CuPy's elementwise ``(in_params, out_params, body)``,
#: compiled under the name ``quantized_net_<key>``.
KERNELS = {
    # The numba form's rules, one element per thread, and the scale
    # 2**-shift applied to the exponent, with the rounding to nearest even
    # of a float multiply where the result falls below the normal range.
    # The subnormal AP2 takes its leading bit from __clz.
    'log_quant': (
        'float32 x, uint32 fsr_bits, uint32 lowest_bits, int32 shift',
        'float32 y', '''
    const unsigned int bits = __float_as_uint(x);
    const unsigned int magnitude = bits & {MAGNITUDE_MASK}u;
    unsigned int q = 0u;
    if (magnitude > {MANTISSA_MASK}u) {{  // normal or infinite
        q = (magnitude & {EXPONENT_MASK}u) +
            (((magnitude & {MANTISSA_MASK}u) >= {AP2_ROUND_UP_MANTISSA}u)
             << {MANTISSA_BITS});
    }} else if (magnitude != 0u) {{  // subnormal
        const int lead = 31 - __clz(magnitude);
        const unsigned int fraction =
            (magnitude << ({MANTISSA_BITS} - lead)) & {MANTISSA_MASK}u;
        q = 1u << (lead + (fraction >= {AP2_ROUND_UP_MANTISSA}u));
    }}
    q = min(q, fsr_bits);
    unsigned int sign = bits & {SIGN_MASK}u;
    if (q < lowest_bits) {{
        q = 0u;
        sign = 0u;
    }}
    if (shift > 0 && q != 0u && q < {EXPONENT_MASK}u) {{
        const int exponent = (int)(q >> {MANTISSA_BITS});
        if (exponent > shift) {{
            q -= (unsigned int)shift << {MANTISSA_BITS};
        }} else {{  // below the normal range: shift the significand out
            const unsigned int significand =
                exponent ? (q & {MANTISSA_MASK}u) | {EXPONENT_ONE}u : q;
            const int drop = shift - (exponent ? exponent : 1) + 1;
            if (drop >= 25) {{
                q = 0u;
            }} else {{
                const unsigned int rest = significand & ((1u << drop) - 1u);
                const unsigned int half = 1u << (drop - 1);
                q = significand >> drop;
                q += rest > half || (rest == half && (q & 1u));
            }}
        }}
    }}
    y = magnitude > {EXPONENT_MASK}u ? x : __uint_as_float(sign | q);
'''.format(**CUDA_CONSTANTS)),
    # -0 is not negative (x >= 0 on the CPU); a negative subnormal is.
    'sign': ('float32 x', 'float32 y', '''
    const unsigned int bits = __float_as_uint(x);
    const unsigned int magnitude = bits & {MAGNITUDE_MASK}u;
    y = magnitude > {EXPONENT_MASK}u ? x : __uint_as_float(
        {ONE_BITS}u | (magnitude != 0u ? bits & {SIGN_MASK}u : 0u));
'''.format(**CUDA_CONSTANTS)),
    # Zero and subnormal inputs are decided on the sign bit: t = m x is
    # then below 1 in magnitude and gives the level next to zero, which is
    # -1/m for a negative subnormal and +1/m for +-0. Other inputs are
    # normal, so the float operations are the CPU's: t is normal; t / 2
    # may flush to +-0, whose floor (+-0) gives the CPU's level, as
    # floor(-tiny) = -1 is restored by the rule for negative t.
    'linear_quant': ('float32 x, float32 m', 'float32 y', '''
    const unsigned int bits = __float_as_uint(x);
    const unsigned int magnitude = bits & {MAGNITUDE_MASK}u;
    if (magnitude > {EXPONENT_MASK}u) {{
        y = x;
    }} else if (magnitude < {EXPONENT_ONE}u) {{
        y = (magnitude != 0u && (bits & {SIGN_MASK}u) ? -1.0f : 1.0f) / m;
    }} else {{
        const float t = fminf(fmaxf(x, -1.0f), 1.0f) * m;
        float j = floorf(t * 0.5f);
        if (t < 0.0f && j > -1.0f) {{
            j = -1.0f;
        }}
        y = (j * 2.0f + 1.0f) / m;
    }}
'''.format(**CUDA_CONSTANTS)),
    # x + 1 absorbs a subnormal x, flushed or not, and is 0 or at least
    # 2**-24 in magnitude, so p is 0 or at least 2**-25: never subnormal.
    # Then u < p, for u in [0, 1), has one answer whether a subnormal u is
    # flushed or not.
    'stochastic_sign': ('float32 x, float32 u', 'float32 y', '''
    if ((__float_as_uint(x) & {MAGNITUDE_MASK}u) > {EXPONENT_MASK}u) {{
        y = x;
    }} else {{
        const float p = fminf(fmaxf((x + 1.0f) * 0.5f, 0.0f), 1.0f);
        y = u < p ? 1.0f : -1.0f;
    }}
'''.format(**CUDA_CONSTANTS)),
    # Magnitude bits, so that a subnormal x cannot be flushed into another
    # answer; a select, not gy * mask, which would flush a subnormal gy
    # (and keep a NaN one, and make an infinite one NaN, where the
    # gradient is cancelled).
    'straight_through_gradient': ('float32 x, float32 gy', 'float32 gx', '''
    gx = (__float_as_uint(x) & {MAGNITUDE_MASK}u) <= {ONE_BITS}u ? gy : 0.0f;
'''.format(**CUDA_CONSTANTS)),
}


#: The quantizers' kernels; each has a second form, ``rectified_<name>``,
#: that rectifies what it quantizes (:data:`RECTIFIED`).
QUANTIZERS = ('log_quant', 'sign', 'linear_quant', 'stochastic_sign')
#: CuPy's ``maximum(y, 0)`` of a float32, as Chainer's ``relu`` launches
#: it: CuPy's ``_float_maximum`` (``in0`` the quantizer's ``y``, ``in1``
#: 0, ``out0_type`` float) after its preamble. The same expression under
#: the same headers and flags gives the same bits: a NaN CuPy's ``NAN``,
#: a subnormal flushed, the sign of a zero as ``max`` gives it.
RECTIFIED = '''
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif
    y = (isnan(y) | isnan(0.0f)) ? (float)(NAN) : (float)(max(y, 0.0f));
'''
for _name in QUANTIZERS:
    _in, _out, _body = KERNELS[_name]
    KERNELS['rectified_' + _name] = (_in, _out, _body + RECTIFIED)
# Chainer's relu_bwd (y > 0 ? gy : 0), then the straight-through select:
# one select on both conditions, gy passed bit for bit or +0.
KERNELS['rectified_straight_through_gradient'] = (
    'float32 x, float32 y, float32 gy', 'float32 gx', '''
    gx = (__float_as_uint(x) & {MAGNITUDE_MASK}u) <= {ONE_BITS}u && y > 0 ?
        gy : 0.0f;
'''.format(**CUDA_CONSTANTS))


def _run(name, *args, **kwargs):
    """Kernel ``name``, or with ``rectified=True`` its rectified form."""
    if kwargs.pop('rectified', False):
        name = 'rectified_' + name
    in_params, out_params, body = KERNELS[name]
    kernel = cuda.elementwise(in_params, out_params, body,
                              'quantized_net_' + name)
    return kernel(*args)


def log_quant_arguments(fsr, lowest, scale):
    """The scalar arguments of the ``log_quant`` kernel after ``x``: the
    bounds as bit patterns, the scale as a shift."""
    return (numpy.uint32(float32_bits(fsr)),
            numpy.uint32(float32_bits(lowest)),
            numpy.int32(scale_shift(scale)))


def log_quant(x, fsr, lowest, scale, rectified=False):
    """:func:`~quantized_net.quantization.kernels.log_quant`."""
    return _run('log_quant', x, *log_quant_arguments(fsr, lowest, scale),
                rectified=rectified)


def sign(x, rectified=False):
    """:func:`~quantized_net.quantization.kernels.sign`."""
    return _run('sign', x, rectified=rectified)


def linear_quant(x, m, rectified=False):
    """:func:`~quantized_net.quantization.kernels.linear_quant` with
    ``m = float32(2**bits - 1)``."""
    return _run('linear_quant', x, m, rectified=rectified)


def stochastic_sign(x, u, rectified=False):
    """:func:`~quantized_net.quantization.kernels.stochastic_sign_of`."""
    return _run('stochastic_sign', x, u, rectified=rectified)


def straight_through_gradient(x, gy):
    """:func:`.kernels.straight_through_gradient`."""
    return _run('straight_through_gradient', x, gy)


def rectified_straight_through_gradient(x, y, gy):
    """:func:`.kernels.rectified_straight_through_gradient`."""
    return _run('rectified_straight_through_gradient', x, y, gy)
