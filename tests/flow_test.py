"""The warping ODE: closed-form flows, solver orders, penalties as state, adjoint gradients."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from scipy import ndimage

from jwarp import (
    Loop,
    SolverConfig,
    UNet,
    UNetConfig,
    compose,
    identity_grid,
    integrate_straight,
    integrate_svf,
    negative_jacobian,
    out_of_grid,
    sample,
    straight_round_trip,
    warp,
)
from jwarp.conv import CONV_OUT
from jwarp.field import flow
from jwarp.flow import DIFFRAX, integrate

H, W = 20, 24


def _rotation_field(omega, b=1, h=H, w=W):
    """v(y, x) = omega * (-(x - cx), (y - cy)): a rigid rotation about the frame centre."""
    g = identity_grid(h, w)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    v = omega * jnp.stack([-(g[..., 1] - cx), g[..., 0] - cy], -1)
    return jnp.broadcast_to(v, (b, h, w, 2))


def _rotated_disp(omega, t, h=H, w=W):
    """Closed form: the point (Y, X) about the centre moves to rotation(omega t) (Y, X)."""
    g = np.asarray(identity_grid(h, w), np.float64)
    yy, xx = g[..., 0] - (h - 1) / 2, g[..., 1] - (w - 1) / 2
    c, s = np.cos(omega * t), np.sin(omega * t)
    return np.stack([yy * c - xx * s - yy, xx * c + yy * s - xx], -1)


def _inner_disk(radius, h=H, w=W):
    g = np.asarray(identity_grid(h, w))
    r = np.hypot(g[..., 0] - (h - 1) / 2, g[..., 1] - (w - 1) / 2)
    return r <= radius


def _smooth_field(key, amplitude, b=2, h=H, w=W, sigma=3.0):
    noise = np.asarray(jax.random.normal(key, (b, h, w, 2)))
    v = ndimage.gaussian_filter(noise, sigma=(0, sigma, sigma, 0), mode="nearest")
    return jnp.asarray(amplitude * v / np.abs(v).max(), jnp.float32)


LOOPS = ("diffrax", "unrolled")
DIRECTIONS = ("forward", "backward")
SOLVERS = ("euler", "heun", "rk4", "tsit5", "dopri5")


class SVFTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(loop=LOOPS, solver=("euler", "rk4"))
    def test_constant_field_integrates_to_v_t(self, loop, solver):
        v = jnp.broadcast_to(jnp.array([1.5, -2.25]), (2, H, W, 2))
        ts = jnp.array([0.0, 0.25, 0.5, 1.0])
        config = SolverConfig(solver=solver, step_size=0.25)
        # ts are closed over: the unrolled loop needs them concrete under jit.
        run = functools.partial(integrate_svf, ts=ts, config=config, loop=Loop(loop))
        res = self.variant(run)(v)
        chex.assert_shape(res.disp, (4, 2, H, W, 2))
        want = ts[:, None, None, None, None] * v[None]
        np.testing.assert_allclose(res.disp, want, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_rotation_field_integrates_to_rotation(self):
        omega = 0.8
        ts = jnp.array([0.25, 0.5, 1.0])
        config = SolverConfig(solver="rk4", step_size=0.05)
        res = self.variant(functools.partial(integrate_svf, ts=ts, config=config))(
            _rotation_field(omega)
        )
        inner = _inner_disk(8.0)  # trajectories stay in the frame: sampling is exact there
        for k, t in enumerate(np.asarray(ts)):
            np.testing.assert_allclose(
                np.asarray(res.disp[k, 0])[inner], _rotated_disp(omega, t)[inner], atol=1e-4
            )

    def test_backward_integration_rotates_back(self):
        omega = 0.8
        res = integrate_svf(
            _rotation_field(omega),
            (1.0,),
            direction="backward",
            config=SolverConfig(solver="rk4", step_size=0.05),
        )
        inner = _inner_disk(8.0)
        np.testing.assert_allclose(
            np.asarray(res.disp[0, 0])[inner], _rotated_disp(omega, -1.0)[inner], atol=1e-4
        )

    @parameterized.parameters(*LOOPS)
    def test_forward_then_backward_returns_to_identity(self, loop):
        v = _smooth_field(jax.random.key(0), amplitude=2.0)
        config, run = SolverConfig(solver="rk4", step_size=0.05), Loop(loop)
        fwd = integrate_svf(v, (1.0,), config=config, loop=run).disp[0]
        bwd = integrate_svf(v, (1.0,), direction="backward", config=config, loop=run).disp[0]
        assert float(jnp.abs(fwd).max()) > 1.0  # a real deformation
        # phi_{-1} ∘ phi_1 = id; the residual is bilinear interpolation of u_{-1} (stated: 0.05
        # px) away from the border, where clamping the field breaks the group property.
        err = jnp.abs(compose(bwd, fwd))[:, 3:-3, 3:-3]
        assert float(err.max()) < 0.05, float(err.max())
        # The inverse map also inverts the image warp, up to two bilinear resamplings' blur.
        x = ndimage.gaussian_filter(np.random.default_rng(0).random((2, H, W, 1)), (0, 2, 2, 0))
        x = jnp.asarray((x - x.min()) / np.ptp(x), jnp.float32)
        moved = warp(x, fwd)
        back_err = float(jnp.abs(warp(moved, bwd) - x)[:, 3:-3, 3:-3].max())
        assert back_err < 0.2 * float(jnp.abs(moved - x).max()), back_err

    def test_solvers_converge_at_their_orders(self):
        """Halving the step divides the error by 2^order (linear field: sampling is exact)."""
        omega = 1.0
        inner = _inner_disk(6.0)
        exact = _rotated_disp(omega, 1.0)[inner]

        def error(solver, step):
            res = integrate_svf(
                _rotation_field(omega),
                (1.0,),
                config=SolverConfig(solver=solver, step_size=step),
                loop=Loop("unrolled"),
                penalties=False,
            )
            return np.abs(np.asarray(res.disp[0, 0])[inner] - exact).max()

        for solver, order, step in (("euler", 1, 0.1), ("heun", 2, 0.1), ("rk4", 4, 0.25)):
            ratio = error(solver, step) / error(solver, step / 2)
            assert 2**order * 0.75 < ratio < 2**order * 1.3, (solver, ratio)
        res = integrate_svf(
            _rotation_field(omega),
            (1.0,),
            config=SolverConfig(solver="dopri5", adaptive=True, rtol=1e-6, atol=1e-6),
        )
        np.testing.assert_allclose(np.asarray(res.disp[0, 0])[inner], exact, atol=1e-4)

    @parameterized.parameters(*SOLVERS)
    def test_unrolled_loop_equals_diffrax(self, solver):
        v = _smooth_field(jax.random.key(1), amplitude=3.0)
        ts = jnp.array([0.0, 0.2, 0.6, 1.0])  # on the step grid
        results = [
            integrate_svf(
                v, ts, config=SolverConfig(solver=solver, step_size=0.1), loop=Loop(loop)
            )
            for loop in LOOPS
        ]
        chex.assert_trees_all_close(*results, atol=2e-5, rtol=1e-5)

    def test_saves_120_frames(self):
        v = _smooth_field(jax.random.key(2), amplitude=2.0, b=1)
        ts = jnp.linspace(0.0, 1.0, 120)
        res = jax.jit(integrate_svf)(v, ts)
        chex.assert_shape(res.disp, (120, 1, H, W, 2))
        np.testing.assert_array_equal(res.disp[0], 0.0)
        # Consecutive frames move by small, even amounts: a smooth animation.
        steps = jnp.abs(jnp.diff(res.disp, axis=0)).max(axis=(1, 2, 3, 4))
        assert float(steps.max()) < 3 * float(steps.mean())

    def test_bad_arguments_are_rejected(self):
        v = jnp.zeros((1, 4, 4, 2))
        with pytest.raises(ValueError, match=r"ts"):
            integrate_svf(v, (0.5, 0.2))
        with pytest.raises(ValueError, match=r"ts"):
            integrate_svf(v, (1.5,))
        with pytest.raises(ValueError, match="direction"):
            integrate_svf(v, direction="sideways")
        with pytest.raises(ValueError, match="flow.step_size"):
            SolverConfig(step_size=-0.1)
        with pytest.raises(ValueError, match="flow.solver"):
            SolverConfig(solver="rk45")
        with pytest.raises(ValueError, match="flow.adaptive"):
            SolverConfig(solver="euler", adaptive=True)


def _affine_field(a, b=1, h=H, w=W):
    """D(p) = A (p - c) about the frame centre c: an affine field, sampled exactly."""
    g = identity_grid(h, w)
    c = jnp.array([[[(h - 1) / 2, (w - 1) / 2]]])
    return jnp.broadcast_to((g - c) @ jnp.asarray(a, jnp.float32).T, (b, h, w, 2))


class DenseLoopTest(chex.TestCase):
    """The animation's ``"dense"`` loop is diffrax's Euler solve with its dense output."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(direction=DIRECTIONS, step_size=(0.1, 0.25))
    def test_dense_euler_matches_diffrax_at_any_times(self, direction, step_size):
        # A field that depends on time and position, as the neural field does.
        velocity = lambda t, u, a: a * (1.0 + t) * jnp.sin(u + 0.3 * t) + 0.5 * a
        v = _smooth_field(jax.random.PRNGKey(3), 2.0)
        config = SolverConfig(solver="euler", step_size=step_size)
        ts = jnp.array([0.0, 0.1, 0.37, 0.5, 0.61, 0.999, 1.0])

        def run(loop, v, ts):
            return integrate(
                velocity, v, v.shape[:3], ts, direction=direction, config=config,
                loop=Loop(loop), penalties=False,
            ).disp

        dense = self.variant(functools.partial(run, "dense"))(v, ts)
        want = run("diffrax", v, ts)
        assert float(jnp.abs(want).max()) > 0.5  # the maps move
        np.testing.assert_allclose(dense, want, atol=2e-5)
        # A frame does not depend on which other frames were asked for.
        alone = self.variant(functools.partial(run, "dense"))(v, ts[2:3])
        np.testing.assert_allclose(alone[0], dense[2], atol=1e-6)

    def test_dense_refuses_what_it_cannot_run_as_diffrax_does(self):
        for config in (SolverConfig(solver="rk4", step_size=0.25),
                       SolverConfig(solver="euler", step_size=0.3)):
            with pytest.raises(ValueError, match="dense"):
                integrate_svf(jnp.zeros((1, 4, 4, 2)), config=config, loop=Loop("dense"))


class StraightFieldTest(chex.TestCase):
    """``field = "straight"``: every point p of x0 moves along p + t D(p)."""

    A = ((0.5, -0.3), (0.2, 0.4))  # I + tA stays invertible for t in [0, 1]

    @chex.variants(with_jit=True, without_jit=True)
    # "scan" runs the same Runge-Kutta steps as "unrolled" (which compiles 80 stages: ~35 s).
    @parameterized.product(loop=("diffrax", "scan"), direction=DIRECTIONS)
    def test_affine_field_gives_the_inverse_of_straight_paths(self, loop, direction):
        ts = jnp.array([0.25, 0.5, 1.0])
        config = SolverConfig(field="straight", solver="rk4", step_size=0.05)
        run = functools.partial(
            integrate_straight, ts=ts, direction=direction, config=config, loop=Loop(loop)
        )
        res = self.variant(run)(_affine_field(self.A))
        chex.assert_shape(res.disp, (3, 1, H, W, 2))
        # Closed form: psi_t(p) = c + (I + tA)(p - c), so phi_t(s) = c + (I + tA)^{-1}(s - c).
        g = np.asarray(identity_grid(H, W), np.float64)
        c = np.array([(H - 1) / 2, (W - 1) / 2])
        inner = _inner_disk(5.0)  # psi_1 stretches: keep its samples in the frame
        a = np.asarray(self.A)
        for k, t in enumerate(np.asarray(ts)):
            m = np.linalg.inv(np.eye(2) + t * a)
            if direction == "backward":  # phi_{-t} = psi_1 ∘ phi_{1-t}
                m = (np.eye(2) + a) @ np.linalg.inv(np.eye(2) + (1 - t) * a)
            want = c + (g - c) @ m.T - g
            np.testing.assert_allclose(np.asarray(res.disp[k, 0])[inner], want[inner], atol=1e-4)

    def test_points_travel_straight_lines_at_constant_speed(self):
        d = _smooth_field(jax.random.key(3), amplitude=2.0)
        ts = (0.25, 0.5, 1.0)
        config = SolverConfig(field="straight", solver="rk4", step_size=0.02)
        res = integrate_straight(d, ts, config=config)
        g = identity_grid(H, W)[None]
        for k, t in enumerate(ts):
            phi = g + res.disp[k]
            # The point of x0 shown at s at time t is p = phi_t(s); it left p for s = p + t D(p).
            err = float(jnp.abs(phi + t * sample(d, phi) - g)[:, 3:-3, 3:-3].max())
            assert err < 2e-3, (t, err)
        assert float(jnp.abs(res.disp[-1]).max()) > 1.0  # a real deformation

    def test_backward_retraces_the_forward_frames_and_inverts_the_end_map(self):
        d = _smooth_field(jax.random.key(4), amplitude=2.0)
        config = SolverConfig(field="straight", solver="rk4", step_size=0.05)
        fwd = integrate_straight(d, (0.25, 0.75, 1.0), config=config)
        bwd = integrate_straight(d, (0.25, 0.75, 1.0), direction="backward", config=config)
        # phi_1 ∘ phi_{-tau} = phi_{1-tau}: warp(x1, u_{-tau}) is the frame at 1 - tau (up to
        # bilinear interpolation of u_1, stated 0.05 px, away from the clamped border).
        for k_back, k_fwd in ((0, 1), (1, 0)):
            got = compose(fwd.disp[-1], bwd.disp[k_back])
            err = float(jnp.abs(got - fwd.disp[k_fwd])[:, 3:-3, 3:-3].max())
            assert err < 0.05, (k_back, err)
        # phi_{-1} = psi_1 = id + D exactly, and it inverts phi_1 (the residual is bilinear
        # interpolation of D and the solver's error).
        np.testing.assert_allclose(bwd.disp[-1], d, atol=1e-5)
        assert float(jnp.abs(compose(bwd.disp[-1], fwd.disp[-1]))[:, 3:-3, 3:-3].max()) < 0.1

    @parameterized.parameters(*DIRECTIONS)
    def test_penalties_accumulate_on_each_directions_maps_and_the_motions_folds(self, direction):
        d = _smooth_field(jax.random.key(5), amplitude=8.0)  # strong enough to fold
        h = 0.02
        config = SolverConfig(field="straight", solver="euler", step_size=h)
        taus = np.linspace(0.0, 1.0, 51)
        res = integrate_straight(d, taus, direction=direction, config=config)
        # Euler accumulates h * f at the solve's times 0, h, .., 1 - h: the saved frames 0..49
        # forward, and 50..1 backward (tau = 1 - t). JD adds the folds of psi_t = id + t D.
        frames = range(50) if direction == "forward" else range(50, 0, -1)
        times = np.arange(50) * h
        jd = h * sum(
            negative_jacobian(res.disp[k]) + negative_jacobian(t * d) for k, t in zip(frames, times)
        )
        og = h * sum(out_of_grid(res.disp[k]) for k in frames)
        folds = h * sum(negative_jacobian(t * d) for t in times)
        assert float(folds.min()) > 1e-4 and float(og.min()) > 1e-4  # both are active
        np.testing.assert_allclose(res.jd, jd, rtol=1e-4)
        np.testing.assert_allclose(res.og, og, rtol=1e-4)

    def test_round_trip_equals_the_two_solves(self):
        d = _smooth_field(jax.random.key(6), amplitude=8.0)
        config = SolverConfig(field="straight", solver="heun", step_size=0.1)
        fwd, bwd = straight_round_trip(d, config)
        for direction, got in (("forward", fwd), ("backward", bwd)):
            want = integrate_straight(d, (1.0,), direction=direction, config=config)
            chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-5)
            assert float(got.jd.max()) > 0.0  # the comparison covers the folds term

    def test_a_stretch_moves_edges_linearly_not_geometrically_as_a_stationary_field(self):
        """A 3x stretch of the rows about the centre: the straight field's frame at t = 0.5 is
        stretched 1 + 0.5 * 2 = 2x, the stationary field's with the same end map sqrt(3)x."""
        k = 2.0
        cfg = dict(solver="rk4", step_size=0.05)
        straight = integrate_straight(
            _affine_field(((k, 0.0), (0.0, 0.0))),
            (0.5, 1.0),
            config=SolverConfig(field="straight", **cfg),
        )
        # phi' = v(phi) with v = -log(1 + k) (p - c) gives phi_t(s) = c + (s - c) / (1 + k)^t.
        stationary = integrate_svf(
            _affine_field(((-np.log1p(k), 0.0), (0.0, 0.0))),
            (0.5, 1.0),
            config=SolverConfig(field="stationary", **cfg),
        )
        rows = np.asarray(identity_grid(H, W))[..., 0] - (H - 1) / 2  # s - c along rows
        inner = _inner_disk(8.0)
        for res, mid_scale in ((straight, 1 + 0.5 * k), (stationary, np.sqrt(1 + k))):
            for t_index, scale in ((0, mid_scale), (1, 1 + k)):
                got = rows + np.asarray(res.disp[t_index, 0, ..., 0])  # phi_t(s) - c
                np.testing.assert_allclose(got[inner], (rows / scale)[inner], atol=1e-4)


class PenaltyStateTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("forward", "backward")
    def test_euler_state_equals_time_average_along_trajectory(self, direction):
        # Strong enough to fold and to push samples out of the frame.
        v = _smooth_field(jax.random.key(3), amplitude=12.0, sigma=1.5)
        step = 0.1
        grid = jnp.linspace(0.0, 1.0, 11)
        config = SolverConfig(solver="euler", step_size=step)
        res = self.variant(
            functools.partial(integrate_svf, ts=grid, config=config, direction=direction)
        )(v)
        # Euler accumulates the left Riemann sum of the penalties along its own trajectory.
        want_jd = step * sum(negative_jacobian(res.disp[k]) for k in range(10))
        want_og = step * sum(out_of_grid(res.disp[k]) for k in range(10))
        assert float(want_jd.min()) > 1e-3 and float(want_og.min()) > 1e-2
        np.testing.assert_allclose(res.jd, want_jd, rtol=1e-4)
        np.testing.assert_allclose(res.og, want_og, rtol=1e-4)

    def test_rk4_state_matches_fine_quadrature(self):
        v = _smooth_field(jax.random.key(4), amplitude=12.0, sigma=1.5)
        config = SolverConfig(solver="rk4", step_size=0.02)
        fine = jnp.linspace(0.0, 1.0, 51)
        res = integrate_svf(v, fine, config=config)
        og = jax.vmap(out_of_grid)(res.disp)
        trapezoid = 0.02 * (og[0] / 2 + og[1:-1].sum(0) + og[-1] / 2)
        np.testing.assert_allclose(res.og, trapezoid, rtol=2e-3)


def _tiny_problem(field):
    k1, k2, k3 = jax.random.split(jax.random.key(5), 3)
    x0 = jnp.asarray(
        ndimage.gaussian_filter(
            np.asarray(jax.random.uniform(k1, (2, 16, 16, 1))), (0, 1.5, 1.5, 0)
        )
    )
    x1 = jnp.roll(x0, (1, -1), axis=(1, 2))
    model = UNet(UNetConfig.tiny(final_init_std=0.3, out_scale=2.0))
    cin = 3 if field == "neural" else 1
    params = model.init(k3, jnp.zeros((1, 16, 16, cin)))
    return model.apply, params, x0, x1


def _loss(apply_fn, config, loop=DIFFRAX):
    def loss(params, x0, x1):
        fwd = flow(apply_fn, params, x0, (1.0,), config=config, loop=loop)
        bwd = flow(apply_fn, params, x0, (1.0,), direction="backward", config=config, loop=loop)
        x1_hat = warp(x0, fwd.disp[-1])
        rec = warp(x1_hat, bwd.disp[-1])
        return (
            jnp.mean(jnp.sum((x1_hat - x1) ** 2, axis=(1, 2, 3)))
            + 0.1 * jnp.mean(jnp.sum((rec - x0) ** 2, axis=(1, 2, 3)))
            + jnp.mean(fwd.jd + fwd.og + bwd.jd + bwd.og)
        )

    return loss


# The straight field's case (~22 s on 2 cores) is slow-marked to keep CI under 10 minutes;
# test_l2_learns_a_translation_through_the_ode[straight] covers its checkpoint gradient.
@pytest.mark.parametrize(
    "field", ["stationary", pytest.param("straight", marks=pytest.mark.slow), "neural"]
)
def test_gradients_agree_across_loops_and_adjoints(field):
    apply_fn, params, x0, x1 = _tiny_problem(field)
    grads = {}
    runs = [("checkpoint", "diffrax", "checkpoint")]
    if field == "neural":  # training unrolls it on CPU
        runs.append(("unrolled", "unrolled", "checkpoint"))
        runs.append(("scan", "scan", "checkpoint"))
        runs.append(("scan_convs", "scan", "checkpoint"))  # keeps the convolutions' outputs
    else:  # the continuous adjoint, once per conditioning (the neural field's costs 30 s)
        runs.append(("backsolve", "diffrax", "backsolve"))
    for name, loop, adjoint in runs:
        # 4 Euler steps for the neural field: its unrolled loop compiles a U-Net per stage.
        step = 0.25 if field == "neural" else 0.1
        keep = (CONV_OUT,) if name == "scan_convs" else ()
        config = SolverConfig(
            field=field,
            solver="euler" if field == "neural" else "rk4",
            step_size=step,
            adjoint=adjoint,
        )
        run = Loop(loop, keep=keep)
        grads[name] = jax.jit(jax.grad(_loss(apply_fn, config, run)))(params, x0, x1)
        chex.assert_tree_all_finite(grads[name])
    flat = {k: jnp.concatenate([g.ravel() for g in jax.tree.leaves(v)]) for k, v in grads.items()}
    assert float(jnp.linalg.norm(flat["checkpoint"])) > 1e-3
    for same in ("unrolled", "scan", "scan_convs"):
        if same in flat:
            # The same discrete solve differentiated another way: equal to float precision.
            np.testing.assert_allclose(
                flat[same],
                flat["checkpoint"],
                rtol=1e-3,
                atol=1e-4 * float(jnp.abs(flat["checkpoint"]).max()),
            )
    if "backsolve" not in flat:
        return
    # Continuous adjoint vs exact discrete gradient: stated tolerance 2 % of the norm.
    rel = jnp.linalg.norm(flat["backsolve"] - flat["checkpoint"]) / jnp.linalg.norm(
        flat["checkpoint"]
    )
    assert float(rel) < 0.02, float(rel)


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


def test_convs_policy_recomputes_no_network_pass_and_keeps_less_than_everything():
    """XLA's accounting of the compiled gradient (neural field, scan loop): keeping every
    convolution's output costs about the FLOPs of keeping everything, a network pass per step
    fewer than keeping only each step's input, and its memory lies between the two."""
    apply_fn, params, x0, x1 = _tiny_problem("neural")
    kinds = {"inputs": {}, "convs": {"keep": (CONV_OUT,)}, "everything": {"remat": False}}
    config = SolverConfig(field="neural", solver="euler", step_size=0.25)
    flops, memory = {}, {}
    for name, kw in kinds.items():
        loss = _loss(apply_fn, config, Loop("scan", **kw))
        compiled = jax.jit(jax.grad(loss)).lower(params, x0, x1).compile()
        flops[name] = _flops(compiled)
        memory[name] = compiled.memory_analysis().temp_size_in_bytes
    recompute = flops["inputs"] - flops["everything"]  # the network's forward passes
    assert recompute > 0.1 * flops["everything"], flops
    assert abs(flops["convs"] - flops["everything"]) < 0.1 * recompute, flops
    assert memory["inputs"] < memory["convs"] < memory["everything"], memory


def test_gradient_through_diffeqsolve_matches_finite_differences():
    v = _smooth_field(jax.random.key(6), amplitude=2.0, b=1, h=12, w=12)
    x = jnp.asarray(
        ndimage.gaussian_filter(np.random.default_rng(1).random((1, 12, 12, 1)), (0, 1.0, 1.0, 0)),
        jnp.float32,
    )
    target = jnp.roll(x, 1, axis=2)
    config = SolverConfig(solver="heun", step_size=0.1)

    def loss(v):
        res = integrate_svf(v, (1.0,), config=config)
        return jnp.sum((warp(x, res.disp[0]) - target) ** 2) + res.og[0] + res.jd[0]

    grad = jax.jit(jax.grad(loss))(v)
    loss = jax.jit(loss)
    for seed in range(3):
        direction = _smooth_field(jax.random.key(10 + seed), amplitude=1.0, b=1, h=12, w=12)
        eps = 1e-2
        fd = (loss(v + eps * direction) - loss(v - eps * direction)) / (2 * eps)
        np.testing.assert_allclose(jnp.vdot(grad, direction), fd, rtol=2e-2)


def test_bounded_unrolled_loop_runs_diffrax_for_long_or_traced_solves():
    """``Loop("unrolled", max_unrolled_steps=n)`` unrolls up to ``n`` steps and runs diffrax's
    loop beyond: the unrolled loop steps onto every save time, diffrax interpolates, so the
    two differ by the interpolation error, which shows which loop ran."""
    v = _smooth_field(jax.random.key(7), amplitude=3.0, b=1)
    config = SolverConfig(solver="euler", step_size=0.25)
    ts = (0.1, 1.0)  # off the step grid: unrolled steps onto 0.1, diffrax interpolates
    bounded = lambda n: integrate_svf(v, ts, config=config, loop=Loop("unrolled", n)).disp
    unrolled = integrate_svf(v, ts, config=config, loop=Loop("unrolled")).disp
    rolled = integrate_svf(v, ts, config=config).disp
    assert float(jnp.abs(unrolled - rolled).max()) > 1e-3  # the two loops are told apart
    np.testing.assert_array_equal(bounded(5), unrolled)  # 5 steps: 0, .1, .25, .5, .75, 1
    np.testing.assert_array_equal(bounded(4), rolled)
    traced = jax.jit(lambda ts: integrate_svf(v, ts, config=config, loop=Loop("unrolled", 64)))
    np.testing.assert_allclose(traced(jnp.array(ts)).disp, rolled, atol=1e-5)
    with pytest.raises(ValueError, match="execution.loop: 'scan' needs fixed steps"):
        integrate_svf(v, config=SolverConfig(solver="tsit5", adaptive=True), loop=Loop("scan"))


def test_backsolve_memory_is_flat_in_the_number_of_steps():
    """XLA's accounting of the compiled gradient: the continuous adjoint keeps no per-step
    state (within 10 % from 20 to 200 steps); the checkpointed one does, and grows."""
    v = _smooth_field(jax.random.key(0), amplitude=2.0, b=2, h=16, w=16)
    target = jnp.roll(v, 1, axis=2)

    def memory(adjoint, steps):
        config = SolverConfig(solver="euler", step_size=1.0 / steps, adjoint=adjoint)
        loss = lambda v: jnp.sum((integrate_svf(v, config=config).disp[-1] - target) ** 2)
        mem = jax.jit(jax.grad(loss)).lower(v).compile().memory_analysis()
        return mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes

    assert memory("backsolve", 200) <= 1.1 * memory("backsolve", 20)
    assert memory("checkpoint", 200) > 2 * memory("checkpoint", 20)
