"""The paper's own numbers (Tables 1-4 of ``shared/reference/paper.md``), for side-by-side reports.

Accuracies are in percent as printed; MMD in units of 1e-3 as printed. The paper does not say
in which units its continuous-IAP MSEs are; ours are in physical units (degrees, mm, ms).
"""

from __future__ import annotations

TABLE1 = {
    "model_name": 98.9,
    "field_strength": 99.2,
    "scan_options": 99.9,
    "flip_angle": 0.080,
    "slice_thickness": 0.133,
    "echo_time": 0.005,
    "repetition_time": 0.046,
}

#: Table 3: method -> (FID, SSIM orig/mod, SSIM shuffled/mod, MMD x 1e-3)
TABLE3 = {
    "Without cDDGM": (0.0, 1.000, 0.258, 0.0),
    "# steps: 25; gs: 3": (0.416, 0.742, 0.284, 0.010),
    "# steps: 25; gs: 5": (0.501, 0.709, 0.277, 0.016),
    "# steps: 25; gs: 7": (0.590, 0.689, 0.272, 0.022),
    "# steps: 50; gs: 3": (0.513, 0.657, 0.287, 0.016),
    "# steps: 50; gs: 5": (0.606, 0.630, 0.281, 0.025),
    "# steps: 50; gs: 7": (0.702, 0.613, 0.276, 0.037),
    "# steps: 75; gs: 3": (0.573, 0.606, 0.288, 0.029),
    "# steps: 75; gs: 5": (0.669, 0.583, 0.283, 0.036),
    "# steps: 75; gs: 7": (0.774, 0.566, 0.279, 0.049),
}

#: Table 4 column order (the paper prints TR before TE).
TABLE4_COLUMNS = (
    "model_name",
    "field_strength",
    "scan_options",
    "flip_angle",
    "slice_thickness",
    "repetition_time",
    "echo_time",
)
#: Table 4: method -> values in TABLE4_COLUMNS order (accuracy %, MSE)
TABLE4 = {
    "Without cDDGM": (22.8, 49.8, 28.0, 0.440, 0.260, 1.046, 0.481),
    "# steps: 25; gs: 3": (77.7, 66.3, 87.8, 0.289, 0.198, 0.293, 0.070),
    "# steps: 25; gs: 5": (82.4, 71.7, 92.8, 0.292, 0.192, 0.249, 0.055),
    "# steps: 25; gs: 7": (83.4, 76.0, 93.0, 0.289, 0.189, 0.237, 0.058),
    "# steps: 50; gs: 3": (85.8, 76.9, 96.0, 0.282, 0.190, 0.207, 0.038),
    "# steps: 50; gs: 5": (87.2, 83.1, 96.3, 0.284, 0.185, 0.186, 0.040),
    "# steps: 50; gs: 7": (88.3, 87.0, 96.6, 0.275, 0.180, 0.179, 0.042),
    "# steps: 75; gs: 3": (87.1, 82.8, 97.0, 0.285, 0.189, 0.183, 0.034),
    "# steps: 75; gs: 5": (88.5, 88.5, 96.5, 0.273, 0.181, 0.174, 0.039),
    "# steps: 75; gs: 7": (89.3, 90.4, 96.6, 0.257, 0.172, 0.172, 0.042),
}

#: Table 2 columns
TABLE2_COLUMNS = ("acc_background", "acc_fat", "acc_fgt", "dice_fat", "dice_fgt", "mean_dice")
#: Table 2: (trained on, tested on, augmented) -> values (accuracy %, Dice)
TABLE2 = {
    ("Both", "Both", False): (99.4, 93.6, 90.3, 0.929, 0.716, 0.840),
    ("GE", "GE", False): (99.4, 96.6, 88.6, 0.949, 0.758, 0.863),
    ("GE", "GE", True): (99.5, 96.5, 89.4, 0.950, 0.757, 0.863),
    ("GE", "SIEMENS", False): (98.3, 94.0, 62.3, 0.860, 0.555, 0.730),
    ("GE", "SIEMENS", True): (99.1, 94.2, 61.7, 0.889, 0.536, 0.739),
    ("SIEMENS", "SIEMENS", False): (99.4, 91.5, 58.7, 0.866, 0.588, 0.746),
    ("SIEMENS", "SIEMENS", True): (99.1, 92.3, 60.2, 0.863, 0.571, 0.737),
    ("SIEMENS", "GE", False): (98.9, 89.3, 59.7, 0.886, 0.549, 0.742),
    ("SIEMENS", "GE", True): (98.8, 91.8, 67.7, 0.896, 0.553, 0.750),
}
