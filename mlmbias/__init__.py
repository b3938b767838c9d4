"""mlmbias: a JAX Monte Carlo benchmark of multilevel and panel estimators.

Importing the package turns on 64-bit floats in JAX: the closed-form estimators
work from sums of squares, whose cancellation float32 cannot carry to the
precision the reference comparisons need.
"""

import jax

jax.config.update("jax_enable_x64", True)

from mlmbias.dgp import DGP as DGP  # noqa: E402
from mlmbias.errors import ConfigError as ConfigError  # noqa: E402
from mlmbias.fitting import fit as fit  # noqa: E402
from mlmbias.groupstats import GroupStats as GroupStats  # noqa: E402
from mlmbias.groupstats import group_stats as group_stats  # noqa: E402
from mlmbias.registry import Batch as Batch  # noqa: E402
from mlmbias.registry import method_names as method_names  # noqa: E402
from mlmbias.registry import register_method as register_method  # noqa: E402
from mlmbias.registry import unregister as unregister  # noqa: E402
from mlmbias.runner import merge as merge  # noqa: E402
from mlmbias.runner import run_study as run_study  # noqa: E402
from mlmbias.scenarios import Contextual as Contextual  # noqa: E402
from mlmbias.scenarios import Scenario as Scenario  # noqa: E402
from mlmbias.scenarios import Seed as Seed  # noqa: E402
from mlmbias.scenarios import Slopes as Slopes  # noqa: E402
from mlmbias.scenarios import contiguous_layout as contiguous_layout  # noqa: E402
from mlmbias.scenarios import get_scenario as get_scenario  # noqa: E402
from mlmbias.scenarios import knob as knob  # noqa: E402
from mlmbias.scenarios import observation_normals as observation_normals  # noqa: E402
from mlmbias.scenarios import register_scenario as register_scenario  # noqa: E402
from mlmbias.scenarios import scenario_names as scenario_names  # noqa: E402
from mlmbias.scenarios import unregister_scenario as unregister_scenario  # noqa: E402
from mlmbias.seeding import condition_id as condition_id  # noqa: E402
from mlmbias.seeding import replication_keys as replication_keys  # noqa: E402
from mlmbias.simulate import Panel as Panel  # noqa: E402
from mlmbias.simulate import simulate as simulate  # noqa: E402
from mlmbias.simulate import simulate_condition as simulate_condition  # noqa: E402
from mlmbias.simulate import to_frame as to_frame  # noqa: E402
from mlmbias.store import load_results as load_results  # noqa: E402
from mlmbias.study import Study as Study  # noqa: E402
from mlmbias.study import load_study as load_study  # noqa: E402

__version__ = "0.1.0"
