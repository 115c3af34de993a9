"""Temporal action localization evaluation: proposals from CAS, NMS, ActivityNet-style mAP.

numpy, pandas and scikit-learn only (no torch): usable on saved outputs and results files anywhere.
"""
from ftcl.evaluation.classification import classification_map
from ftcl.evaluation.detection import DetectionResult, Segments, evaluate_detection, parse_range, segment_iou
from ftcl.evaluation.io import (EvaluationInputError, GroundTruth, VideoInfo, class_names, ground_truth_from,
                                load_ground_truth, load_predictions, predictions_from_results, read_database,
                                read_results, results_json)
from ftcl.evaluation.pipeline import Detections, VideoOutput, evaluate_outputs, localize, score_proposals
from ftcl.evaluation.proposals import ProposalConfig, nms, t_factor, upsample, video_proposals
from ftcl.evaluation.report import detection_frame, detection_table

__all__ = ["DetectionResult", "EvaluationInputError", "GroundTruth", "ProposalConfig", "Segments", "VideoInfo",
           "VideoOutput", "class_names", "classification_map", "detection_frame", "detection_table",
           "evaluate_detection", "evaluate_outputs", "ground_truth_from", "load_ground_truth", "load_predictions",
           "localize", "score_proposals", "Detections", "nms", "parse_range", "predictions_from_results",
           "read_database", "read_results", "results_json", "segment_iou", "t_factor", "upsample", "video_proposals"]
