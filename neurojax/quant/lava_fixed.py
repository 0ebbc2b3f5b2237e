"""Constants of the Lava bit-accurate neuron rules (spec `neuromorphic.md`), defined once.

Shared by the interpreter's microcode neurons (`neurojax.neuromorphic.neurons`) and the
spiking modules' integer twins (`neurojax.spiking.neurons`), which implement the same rules
independently (neither layer may import the other).
"""
DECAY_BITS = 12  # du, dv (and an adaptation decay) are fractions of 2**12
DECAY_UNITY = 1 << DECAY_BITS  # 4096
DECAY_MAX = DECAY_UNITY - 1  # 4095
ACT_SHIFT = 6  # input and threshold are scaled by 2**6 (MSB alignment)
UV_BITS = 24  # current and voltage are 24-bit quantities
V_MAX = (1 << (UV_BITS - 1)) - 1  # voltage saturates to +-(2**23 - 1)
U_HALF = 1 << (UV_BITS - 1)  # 2**23: the "lava" current correction bounds
U_SPAN = 1 << UV_BITS  # 2**24: the "lava" current correction step
BIAS_MANT_BITS = 13  # Lava's 13-bit bias mantissa

COMPARES = (">", ">=")  # spike where v > vth << 6 (Lava's CPU model) or >=
CURRENT_WRAPS = ("lava", "wrap", "saturate")  # the asymmetric 24-bit correction, two's complement, saturation
ACTIVATIONS = ("relu", "unit")  # sigma-delta activation
PAYLOAD_OVERFLOWS = ("saturate", "wrap")  # graded payloads beyond their width
