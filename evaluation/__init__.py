"""Temporal action localization evaluation: proposals from CAS, NMS, ActivityNet-style mAP.

numpy, pandas and scikit-learn only (no torch): usable on saved outputs and results files anywhere.
"""
from evaluation import cli
from evaluation.classification import classification_map
from evaluation.detection import DetectionResult, Segments, evaluate_detection, parse_range, segment_iou
from evaluation.io import (EvaluationInputError, GroundTruth, VideoInfo, atomic_write, class_names, ground_truth_from,
                           load_ground_truth, load_predictions, predictions_from_results, read_database, read_results,
                           results_json, write_json_atomic)
from evaluation.pipeline import Detections, VideoOutput, evaluate_outputs, localize, score_proposals
from evaluation.proposals import ProposalConfig, nms, t_factor, upsample, video_proposals
from evaluation.report import detection_frame, detection_table, markdown

__all__ = ["cli", "DetectionResult", "EvaluationInputError", "GroundTruth", "ProposalConfig", "Segments", "VideoInfo",
           "VideoOutput", "atomic_write", "class_names", "classification_map", "detection_frame", "detection_table",
           "evaluate_detection", "evaluate_outputs", "ground_truth_from", "load_ground_truth", "load_predictions",
           "localize", "markdown", "score_proposals", "Detections", "nms", "parse_range", "predictions_from_results",
           "read_database", "read_results", "results_json", "segment_iou", "t_factor", "upsample", "video_proposals",
           "write_json_atomic"]
