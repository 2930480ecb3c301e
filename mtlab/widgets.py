"""Interactive panels for JupyterLab (ipywidgets). Notebooks place them; the core never imports
this module."""

from __future__ import annotations

import ipywidgets as w
import matplotlib.pyplot as plt
from IPython.display import display

from .data import MultiTaskData
from .experiments import compare_models, get_profile, summary_table
from .plots import learning_curves


class QuickstartPanel:
    """Sliders for learning rate, hidden size and epochs, and a Run button that retrains the models
    on a subsample of `data` (at most `max_rows` training rows, so a run takes seconds) and redraws
    the learning curves and the AUC table."""

    def __init__(self, data: MultiTaskData, models=("single_task", "shared_bottom"), device: str = "auto",
                 seed: int = 0, max_rows: int = 10_000):
        self.data = data.subsample(min(1.0, max_rows / len(data.train)), seed)
        self.models = tuple(models)
        self.profile = get_profile("quick", seeds=[seed], device=device)
        self.lr = w.FloatLogSlider(value=1e-3, base=10, min=-4, max=-1, step=0.25, description="learning rate",
                                   continuous_update=False, style={"description_width": "initial"})
        self.hidden = w.IntSlider(value=128, min=16, max=512, step=16, description="hidden size",
                                  continuous_update=False, style={"description_width": "initial"})
        self.epochs = w.IntSlider(value=self.profile.epochs, min=1, max=20, description="epochs",
                                  continuous_update=False, style={"description_width": "initial"})
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.status = w.Label()
        self.output = w.Output()
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox([w.HBox([self.lr, self.hidden, self.epochs]), w.HBox([self.button, self.status]),
                              self.output])
        self.runs = 0
        self.last_table = None

    def model_options(self) -> dict:
        h = self.hidden.value
        return {m: {"bottom": (h, max(8, h // 2))} for m in self.models}

    def run(self):
        """Retrain with the current slider values and redraw; returns the AUC table."""
        self.button.disabled = True
        self.status.value = f"training {', '.join(self.models)} …"
        try:
            results, histories = compare_models(self.data, self.models, self.profile, self.model_options(),
                                                 lr=self.lr.value, epochs=self.epochs.value, patience=0,
                                                 quiet=True)
            self.last_table = summary_table(results)
            self.runs += 1
            with self.output:
                self.output.clear_output(wait=True)
                fig = learning_curves(histories, self.data.tasks)
                plt.show(fig)
                display(self.last_table)
            self.status.value = (f"run {self.runs}: lr={self.lr.value:.0e}, hidden={self.hidden.value}, "
                                 f"epochs={self.epochs.value}")
        finally:
            self.button.disabled = False
        return self.last_table

    def _ipython_display_(self):
        display(self.widget)
