"""Temporal action localization evaluation: proposals from CAS, NMS, ActivityNet-style mAP.

numpy and pandas only (no torch): usable on saved outputs and results files anywhere.
"""
from evaluation.classification import average_precision, classification_map
from evaluation.detection import DetectionResult, Segments, evaluate_detection, segment_iou
from evaluation.io import (EvaluationInputError, GroundTruth, load_ground_truth, load_predictions,
                           predictions_from_results, results_json, write_json_atomic)
from evaluation.pipeline import VideoOutput, evaluate_outputs, localize
from evaluation.proposals import ProposalConfig, nms, t_factor, upsample, video_proposals
from evaluation.report import detection_table

__all__ = ["DetectionResult", "EvaluationInputError", "GroundTruth", "ProposalConfig", "Segments",
           "VideoOutput", "average_precision", "classification_map", "detection_table", "evaluate_detection",
           "evaluate_outputs", "localize",
           "load_ground_truth", "load_predictions", "nms", "predictions_from_results", "results_json",
           "segment_iou", "t_factor", "upsample", "video_proposals", "write_json_atomic"]
