"""Example clinical facts per WISeR category, shared by tests, the demo generator and the simulator.

``COMPLETE_FACTS[category]`` is a realistic request that meets every criterion of every policy governing the
category (all MACs' variants use the same fact names). ``VIOLATIONS[category]`` is ``(fact, bad value,
criterion id)``: replacing the fact with the bad value makes that criterion UNMET, and removing the fact makes
it UNKNOWN.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CATEGORIES", "COMPLETE_FACTS", "VIOLATIONS", "complete_facts"]

COMPLETE_FACTS: dict[str, dict[str, Any]] = {
    "knee_arthroscopy": {
        "acr_oa_criteria_count": 6,
        "procedure_is_lavage_only": False,
        "knee_pain_only": False,
        "oa_outerbridge_grade": "II",
        "mechanical_symptoms": True,
    },
    "trigeminal_neurolysis": {
        "chronic_pain_documented": True,
    },
    "spinal_cord_stimulation": {
        "chronic_intractable_pain": True,
        "prior_modalities_failed": True,
        "prior_modalities_contraindicated": False,
        "multidisciplinary_evaluation_done": True,
        "psychological_evaluation_done": True,
        "physical_evaluation_done": True,
        "facility_support_available": True,
        "is_replacement_of_working_system": False,
        "trial_done": True,
        "trial_relief_percent": 65,
    },
    "vagus_nerve_stimulation": {
        "vns_indication": "partial_onset_seizures",
        "medically_refractory": True,
        "surgery_not_recommended_or_failed": True,
        "in_cms_approved_ced_trial": False,
    },
    "phrenic_nerve_stimulation": {
        "respiratory_insufficiency": "partial",
        "phrenic_nerve_intact": True,
        "diaphragm_intact": True,
    },
    "penile_prosthesis": {
        "organic_cause_documented": True,
    },
    "incontinence_devices": {
        "device_type": "mechanical_hydraulic",
        "permanent_anatomic_or_neurologic_dysfunction": True,
        "isd_documented": False,
        "collagen_skin_test_weeks": 0,
    },
    "sacral_nerve_stimulation": {
        "sns_indication": "urge_incontinence",
        "conventional_therapy_failed": True,
        "surgical_candidate": True,
        "test_stim_improvement_percent": 70,
        "can_keep_voiding_diary": True,
        "stress_incontinence": False,
        "urinary_obstruction": False,
        "secondary_neurologic_cause": False,
    },
    "epidural_steroid_injection": {
        "esi_indication": "radiculopathy",
        "spinal_region": "lumbar",
        "imaging_concordant_with_exam": True,
        "baseline_scale": "odi",
        "baseline_scale_score": 46,
        "functional_impact_documented": True,
        "pain_duration_weeks": 10,
        "conservative_care_weeks": 8,
        "conservative_care_failed": True,
        "conservative_care_not_tolerated": False,
        "guidance_modality": "fluoroscopy",
        "contrast_used": True,
        "contrast_contraindicated": False,
        "active_rehab_program": True,
        "regions_this_session": 1,
        "approach": "transforaminal",
        "levels_this_session": 2,
        "bilateral": False,
        "prior_esi_same_region": False,
        "prior_esi_no_response": False,
        "months_of_esi_treatment": 0,
        "predetermined_series": False,
    },
    "vertebral_augmentation": {
        "fracture_age_weeks": 3,
        "fracture_level": "L1",
        "acuity_imaging_finding": "mri_marrow_edema",
        "hospitalized": False,
        "pain_nrs": 7,
        "optimal_nsm_documented": True,
        "pain_trend": "worsening",
        "height_loss_progressing": True,
        "height_loss_percent": 30,
        "kyphotic_deformity": False,
        "rdq_score": 19,
        "bmd_referral_documented": True,
        "osteoporosis_program_instruction": True,
        "fracture_etiology": "osteoporotic",
        "pain_from_identified_fracture": True,
        "active_infection": False,
        "pregnant": False,
        "levels_this_procedure": 1,
    },
    "cervical_fusion": {
        "fusion_indication": "radiculopathy",
        "arm_pain_vas": 6,
        "adl_impact_documented": True,
        "other_sources_excluded": True,
        "imaging_stenosis_at_level": True,
        "arm_pain_weeks": 16,
        "conservative_care_failed": True,
        "conservative_care_waived": False,
        "progressive_neuro_deficit": False,
        "significant_myelopathy": False,
        "bowel_bladder_loss": False,
        "myelopathy_symptomatic": False,
        "imaging_cord_compression": False,
        "structural_indication": "none",
        "translation_mm": 0,
        "angulation_deg": 0,
    },
    "hypoglossal_nerve_stimulation": {
        "age_years": 64,
        "ahi": 32,
        "central_mixed_percent": 8,
        "months_since_psg": 6,
        "bmi": 29.5,
        "cpap_failure": False,
        "cpap_intolerance": True,
        "shared_decision_making_documented": True,
        "dise_done": True,
        "complete_concentric_collapse": False,
        "anatomic_contraindication": False,
        "device_fda_approved": True,
        "hgns_contraindication_present": False,
    },
    "skin_substitutes": {
        "wound_id": "left-plantar-1",
        "standard_care_weeks": 6,
        "wound_area_cm2": 3.2,
        "clean_granular_base": True,
        "active_infection": False,
        "osteomyelitis": False,
        "abi": 0.85,
        "toe_pressure_mmhg": 55,
        "offloading_or_compression_documented": True,
        "patient_compliant": True,
        "current_smoker": False,
        "cessation_counseling_documented": False,
        "weeks_since_first_application": 0,
        "products_on_wound_concurrently": 1,
    },
}

VIOLATIONS: dict[str, tuple[str, Any, str]] = {
    "knee_arthroscopy": ("oa_outerbridge_grade", "IV", "knee.debridement_pain_only_or_severe"),
    "trigeminal_neurolysis": ("chronic_pain_documented", False, "nerve_lesion.selected_chronic_pain"),
    "spinal_cord_stimulation": ("trial_relief_percent", 20, "scs.trial_success"),
    "vagus_nerve_stimulation": ("medically_refractory", False, "vns.epilepsy"),
    "phrenic_nerve_stimulation": ("diaphragm_intact", False, "phrenic.intact_nerve"),
    "penile_prosthesis": ("organic_cause_documented", False, "ed.reasonable_necessary"),
    "incontinence_devices": (
        "permanent_anatomic_or_neurologic_dysfunction",
        False,
        "icd.mechanical",
    ),
    "sacral_nerve_stimulation": ("test_stim_improvement_percent", 30, "sns.test_stimulation"),
    "epidural_steroid_injection": ("pain_duration_weeks", 2, "esi.pain_duration"),
    "vertebral_augmentation": ("fracture_age_weeks", 20, "pva.fracture_acuity_imaging"),
    "cervical_fusion": ("arm_pain_weeks", 6, "cfusion.conservative_care"),
    "hypoglossal_nerve_stimulation": ("bmi", 37.0, "hgns.bmi"),
    "skin_substitutes": ("wound_area_cm2", 0.5, "skin.wound_characteristics"),
}

CATEGORIES: tuple[str, ...] = tuple(COMPLETE_FACTS)


def complete_facts(category: str) -> dict[str, Any]:
    """A fresh, mutable copy of the complete example facts for a category."""
    return dict(COMPLETE_FACTS[category])
