"""Geodesic distances on triangle meshes and point clouds.

- :func:`mesh_geodesics`: on a mesh, from vertices or surface points, by the heat
  method (default; on the mesh's intrinsic Delaunay refinement, see
  :mod:`kptool.geodesic.intrinsic`) or exactly (pygeodesic).
- :func:`cloud_geodesics`: on a bare point cloud, by potpourri3d's point-cloud
  heat method or Dijkstra on a symmetric k-NN graph (k=20, KeypointNet's benchmark).
- :func:`distances_to_points`: from keypoints to a shape's sampled points, on its
  mesh when it has one.

Distances are in the frame of the coordinates given (for a prepared dataset, the
prepared frame: divide by ``Transform.scale`` for the original frame). Points that
cannot be reached (another connected part) get ``inf`` and an
:class:`UnreachableWarning`, never 0. Solvers are cached per geometry, so asking
for more sources on the same shape does not repeat the factorisation.
"""

from kptool.geodesic._common import UnreachableWarning
from kptool.geodesic.cloud import CLOUD_METHODS, cloud_geodesics, knn_graph
from kptool.geodesic.mesh import MESH_METHODS, mesh_geodesics
from kptool.geodesic.points import METHODS, distances_to_points
from kptool.geodesic.surface import SurfacePoints, snap_to_surface

__all__ = ["CLOUD_METHODS", "MESH_METHODS", "METHODS", "SurfacePoints", "UnreachableWarning", "cloud_geodesics",
           "distances_to_points", "knn_graph", "mesh_geodesics", "snap_to_surface"]
