"""Images from shapes: cameras, a hard rasteriser with materials, rendered datasets,
and a differentiable (soft) silhouette renderer for camera refinement."""

from kptool.render.camera import Camera, ViewSampling, intrinsics, look_at, project, project_np
from kptool.render.materials import RenderMesh, from_arrays, load_textured
from kptool.render.raster import Fragments, rasterize
from kptool.render.views import BACKGROUNDS, View, render_views

__all__ = ["BACKGROUNDS", "Camera", "Fragments", "RenderMesh", "View", "ViewSampling", "from_arrays", "intrinsics",
           "load_textured", "look_at", "project", "project_np", "rasterize", "render_views"]
