"""Pictures of keypoints and metric curves (matplotlib, Agg backend: no display needed).

- :func:`keypoint_colors`: the palette, one colour per keypoint index, the same for every shape
- :func:`plot_keypoints`: one shape with its keypoints
- :func:`plot_keypoint_grid`: many shapes side by side, same view, to judge consistency
- :func:`plot_curves`: metric curves (mIoU over thresholds, repeatability over noise...)
- :func:`plot_training_curves`: loss and a chosen validation metric over epochs of training runs
- :func:`plot_embeddings`, :func:`plot_correspondences`: dense embeddings as colours
  (one projection for all shapes of a picture) and nearest-embedding correspondences

Shapes are drawn in the prepared frame, which is y-up: y is drawn vertical.
"""

from kptool.viz.embeddings import embedding_colors, plot_correspondences, plot_embeddings
from kptool.viz.plots import keypoint_colors, plot_curves, plot_keypoint_grid, plot_keypoints, plot_training_curves

__all__ = ["keypoint_colors", "plot_keypoints", "plot_keypoint_grid", "plot_curves", "plot_training_curves",
           "embedding_colors", "plot_embeddings", "plot_correspondences"]
