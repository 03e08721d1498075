"""The toy three-subcircuit model: why a product of factors learns with a plateau.

Scalar product model (Saxe et al. 2014; Singh et al. 2024, section "toy model"):
the loss L = 1/2 (s - u)^2 with u = w_1 w_2 ... w_D, trained by gradient flow
tau dw_i/dt = -dL/dw_i. With all factors equal (balanced) to w, u = w^D and
tau dw/dt = w^(D-1) (s - w^D). Each factor's gradient is the product of the others,
so when all start small nothing grows until everything grows: D = 1 decays
exponentially, D = 2 is a sigmoid (Saxe), D = 3 sits on a plateau ~ tau/(s w0) and then
drops sharply. Clamping a factor at its target removes it from the product
(D = 3 -> 2 -> 1): the toy explanation of Singh et al.'s clamping results, where the
three factors stand for the previous-token head, the match (QK) and the copy (OV).

Where things live (every name is also importable from tinyinduction.toy):
    scalar.py   closed forms for D = 1, 2, 3 (balanced), times to reach a fraction of s,
                plateau length and transition time, the numerical flow for any D and
                unbalanced factors (solve_ivp, bounded work), its conserved quantities
                w_i^2 - w_j^2, gradient descent, clamping
    vector.py   Singh et al.'s vector model (a, b, c in R^N, rank-1 target) with clamping
    fit.py      a fit of the scalar model to a measured loss curve
    plots.py    the figures (the toy command's and lesson 04's)
    cli.py      run_cli(argv) for `python -m tinyinduction toy`
    checks.py   argument checks: every error names the argument, its value, what is allowed

Conventions: time t is in the units of tau unless said otherwise (tau = 1 -> "units of
tau"). Plateau length = time for u to go from u0 to PLATEAU_FRACTION * s (the loss is
still within 10 % of its plateau under the linear loss mapping used by the fit).
Transition time = time for u to reach TRANSITION_FRACTION * s = 0.6 s, which under the
same mapping (loss = floor + height (1 - u/s)) is Singh et al.'s "loss < 0.4 x plateau".
"""
from .cli import DEFAULT_FIGURE, run_cli, time_grid
from .fit import ToyFit, fit_scalar_model, toy_loss_curve
from .plots import (closed_vs_sim_figure, depth_figure, fit_figure, plateau_scaling_figure,
                    plot_clamping_figure, vector_clamps_figure)
from .scalar import (CLAMP_LABELS, CLOSED_FORM_DEPTHS, MAX_RHS_EVALUATIONS, ODE_ATOL, ODE_RTOL,
                     PLATEAU_FRACTION, TRANSITION_FRACTION, clamped_model, clamping_curves,
                     clamping_summary, closed_form_factor, closed_form_product, closed_form_time,
                     conserved_quantities, depth3_antiderivative, gradient_descent,
                     plateau_length, product_gradient, product_loss, relaxation_time,
                     settling_time, simulate_flow, simulated_time_to_fraction, target_factor,
                     time_to_fraction, transition_time)
from .vector import (FACTOR_NAMES, VECTOR_CLAMPS, aligned_scalar_equivalent, misalignment,
                     random_factors, train_vector_model, vector_gradient, vector_loss,
                     vector_loss_tensor)
