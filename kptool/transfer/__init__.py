"""2D-3D-2D keypoint transfer (paper 004): images -> 3D shape -> keypoints -> back into the image."""
