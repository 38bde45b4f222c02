"""A small hand-written medical knowledge base: the single source of medjax's default data.

Every default file (pretraining corpus, instructions, preference pairs, the MedQA-style
benchmark) is rendered from these records by `build_default_data.py`, so a fact is written
once and the training data and the evaluation agree about it. The entries are simplified
textbook summaries for a tiny demonstration model, not clinical guidance.

Field conventions (the renderers build sentences from them):
- `name`: lower case unless a proper noun; reads after "a patient with ...".
- `definition`: completes "<name> is ...".
- `symptoms`: three noun phrases that complete "presents with A, B and C".
- `test`: completes "the key test is ..."; it starts with "clinical" when the diagnosis
  is made from history and examination alone (no confirming test to ask about).
- `treatment`: completes "the first-line treatment is ...".
- `ages`: typical age range at presentation in years (0 means an infant under one year).
- `sex`: "any", "female" or "male", the patients it occurs in (for case vignettes).
"""
from __future__ import annotations

import dataclasses

# Body systems and how the corpus introduces them.
BODY_SYSTEMS = {
    "cardiovascular": "the heart and the blood vessels",
    "respiratory": "the airways and the lungs",
    "digestive": "the gut, the liver, the gallbladder and the pancreas",
    "endocrine": "the hormone-producing glands",
    "urinary": "the kidneys, the bladder and the prostate",
    "nervous": "the brain, the spinal cord and the nerves",
    "musculoskeletal": "the bones, the joints and the muscles",
    "blood": "the blood cells and the blood-forming organs",
    "infectious": "infections by bacteria, viruses and parasites",
    "skin": "the skin",
    "reproductive": "pregnancy, the breast and the female and male reproductive organs",
    "eye and ear": "the eyes and the ears",
    "mental health": "mood, thinking and behaviour",
    "immune": "the immune system",
}

SEXES = ("any", "female", "male")


@dataclasses.dataclass(frozen=True)
class Condition:
    name: str
    system: str
    definition: str
    symptoms: tuple[str, str, str]
    test: str
    treatment: str
    ages: tuple[int, int]
    sex: str = "any"

    @property
    def is_clinical_diagnosis(self) -> bool:
        """True when no single test confirms the diagnosis (see the module notes)."""
        return self.test.startswith("clinical")


CONDITIONS: tuple[Condition, ...] = (
    # -- cardiovascular ---------------------------------------------------------------------
    Condition(
        name="hypertension", system="cardiovascular",
        definition="a long-term condition in which the blood pressure in the arteries stays raised",
        symptoms=("readings above 140/90 mmHg on several visits", "an occasional morning "
                  "headache", "no chest pain or breathlessness"),
        test="repeated blood pressure measurement, ideally with home or ambulatory monitoring",
        treatment="lifestyle change with an ACE inhibitor or a calcium channel blocker",
        ages=(40, 75)),
    Condition(
        name="stable angina", system="cardiovascular",
        definition="chest pain caused by narrowed coronary arteries that cannot supply enough "
                   "blood to the heart muscle during effort",
        symptoms=("chest tightness on exertion", "pain that settles within minutes of rest",
                  "breathlessness when climbing stairs"),
        test="CT coronary angiography",
        treatment="a glyceryl trinitrate spray for attacks and a beta blocker such as bisoprolol",
        ages=(50, 80)),
    Condition(
        name="myocardial infarction", system="cardiovascular",
        definition="death of part of the heart muscle after a coronary artery is suddenly "
                   "blocked by a blood clot, commonly called a heart attack",
        symptoms=("crushing central chest pain at rest", "pain spreading to the left arm or jaw",
                  "heavy sweating and nausea"),
        test="an electrocardiogram together with blood troponin levels",
        treatment="aspirin and urgent reopening of the artery by percutaneous coronary intervention",
        ages=(45, 85)),
    Condition(
        name="heart failure", system="cardiovascular",
        definition="a condition in which the heart cannot pump enough blood to meet the needs "
                   "of the body",
        symptoms=("breathlessness when lying flat", "swelling of both ankles",
                  "tiredness on light effort"),
        test="an echocardiogram, often after a raised natriuretic peptide blood test",
        treatment="a loop diuretic such as furosemide for fluid overload, with an ACE inhibitor "
                  "and a beta blocker",
        ages=(60, 90)),
    Condition(
        name="atrial fibrillation", system="cardiovascular",
        definition="an irregular and often fast heart rhythm that starts in the upper chambers "
                   "of the heart",
        symptoms=("palpitations", "an irregularly irregular pulse", "dizziness"),
        test="an electrocardiogram",
        treatment="rate control with a beta blocker and anticoagulation to prevent stroke",
        ages=(60, 90)),
    Condition(
        name="deep vein thrombosis", system="cardiovascular",
        definition="a blood clot in a deep vein, most often in the calf or thigh",
        symptoms=("swelling of one calf", "calf pain and tenderness", "warm, red skin over the leg"),
        test="compression ultrasound of the leg veins",
        treatment="anticoagulation with a direct oral anticoagulant such as apixaban",
        ages=(30, 85)),
    Condition(
        name="peripheral arterial disease", system="cardiovascular",
        definition="narrowing of the arteries of the legs by atherosclerosis",
        symptoms=("calf pain on walking that eases with rest", "cold feet",
                  "weak pulses in the feet"),
        test="the ankle-brachial pressure index",
        treatment="stopping smoking, supervised exercise, a statin and an antiplatelet drug",
        ages=(55, 85)),
    Condition(
        name="infective endocarditis", system="cardiovascular",
        definition="an infection of the inner lining of the heart, usually on a heart valve",
        symptoms=("fever lasting several days", "a new heart murmur", "small painful spots on "
                  "the fingertips"),
        test="several sets of blood cultures with echocardiography",
        treatment="several weeks of intravenous antibiotics",
        ages=(30, 80)),
    Condition(
        name="aortic stenosis", system="cardiovascular",
        definition="narrowing of the aortic valve that blocks blood leaving the heart",
        symptoms=("fainting during exercise", "chest pain on effort",
                  "a harsh murmur at the upper right edge of the breastbone"),
        test="an echocardiogram",
        treatment="replacement of the aortic valve",
        ages=(65, 90)),
    # -- respiratory ------------------------------------------------------------------------
    Condition(
        name="asthma", system="respiratory",
        definition="a long-term inflammation of the airways that makes them narrow and twitchy",
        symptoms=("wheeze", "a dry cough that is worse at night", "chest tightness after exercise"),
        test="spirometry showing airflow obstruction that improves after a bronchodilator",
        treatment="an inhaled corticosteroid, with a short-acting bronchodilator for relief",
        ages=(5, 40)),
    Condition(
        name="chronic obstructive pulmonary disease", system="respiratory",
        definition="a long-term lung disease, usually caused by smoking, in which the airways "
                   "stay narrowed",
        symptoms=("a productive cough most mornings", "breathlessness that slowly gets worse",
                  "frequent chest infections in winter"),
        test="spirometry showing airflow obstruction that does not fully reverse",
        treatment="stopping smoking and an inhaled long-acting bronchodilator",
        ages=(50, 85)),
    Condition(
        name="community-acquired pneumonia", system="respiratory",
        definition="an infection of the lung tissue caught outside hospital",
        symptoms=("fever with shivers", "a cough bringing up green sputum",
                  "sharp chest pain on breathing in"),
        test="a chest X-ray showing new consolidation",
        treatment="an oral antibiotic such as amoxicillin",
        ages=(20, 90)),
    Condition(
        name="pulmonary tuberculosis", system="respiratory",
        definition="a slowly progressive lung infection caused by Mycobacterium tuberculosis",
        symptoms=("a cough lasting more than three weeks", "drenching night sweats",
                  "weight loss"),
        test="sputum testing for the bacterium by nucleic acid amplification and culture",
        treatment="six months of combined rifampicin, isoniazid, pyrazinamide and ethambutol",
        ages=(20, 70)),
    Condition(
        name="spontaneous pneumothorax", system="respiratory",
        definition="air in the space around a lung that makes the lung collapse",
        symptoms=("sudden sharp pain on one side of the chest", "sudden breathlessness",
                  "reduced breath sounds on one side"),
        test="a chest X-ray",
        treatment="observation for a small one, and needle aspiration or a chest drain for a "
                  "large one",
        ages=(18, 40)),
    Condition(
        name="pulmonary embolism", system="respiratory",
        definition="a blood clot that blocks an artery in the lungs, usually after travelling "
                   "from a leg vein",
        symptoms=("sudden breathlessness", "chest pain that is worse on breathing in",
                  "a fast heart rate"),
        test="CT pulmonary angiography",
        treatment="anticoagulation, starting with heparin or a direct oral anticoagulant",
        ages=(30, 85)),
    Condition(
        name="influenza", system="respiratory",
        definition="a viral infection of the airways that spreads in winter outbreaks",
        symptoms=("a sudden high fever", "aching muscles", "a dry cough"),
        test="a nose and throat swab tested by PCR",
        treatment="rest and fluids, with oseltamivir for people at high risk",
        ages=(5, 80)),
    Condition(
        name="the common cold", system="respiratory",
        definition="a mild viral infection of the nose and throat",
        symptoms=("a runny nose", "sneezing", "a scratchy throat"),
        test="clinical diagnosis from the history and examination",
        treatment="rest, fluids and paracetamol for aches",
        ages=(2, 70)),
    Condition(
        name="obstructive sleep apnoea", system="respiratory",
        definition="repeated closing of the upper airway during sleep that interrupts breathing",
        symptoms=("loud snoring", "pauses in breathing seen by a partner",
                  "sleepiness during the day"),
        test="an overnight sleep study",
        treatment="continuous positive airway pressure at night and weight loss",
        ages=(35, 70)),
    Condition(
        name="lung cancer", system="respiratory",
        definition="a malignant tumour that starts in the lining of the airways, most often "
                   "caused by smoking",
        symptoms=("a persistent cough", "coughing up blood", "unexplained weight loss"),
        test="a CT scan of the chest followed by a biopsy",
        treatment="surgical removal of the tumour when it is found at an early stage",
        ages=(55, 85)),
    # -- digestive --------------------------------------------------------------------------
    Condition(
        name="gastro-oesophageal reflux disease", system="digestive",
        definition="a condition in which stomach acid repeatedly flows back into the gullet",
        symptoms=("burning pain behind the breastbone", "a sour taste in the mouth",
                  "symptoms that are worse when lying down after meals"),
        test="clinical diagnosis, with endoscopy only when warning features are present",
        treatment="a proton pump inhibitor such as omeprazole",
        ages=(25, 70)),
    Condition(
        name="peptic ulcer disease", system="digestive",
        definition="an open sore in the lining of the stomach or duodenum",
        symptoms=("burning upper abdominal pain", "pain that changes with meals", "bloating"),
        test="testing for Helicobacter pylori and upper endoscopy",
        treatment="a proton pump inhibitor with antibiotics to clear Helicobacter pylori",
        ages=(30, 75)),
    Condition(
        name="acute appendicitis", system="digestive",
        definition="a sudden inflammation of the appendix",
        symptoms=("pain that starts around the navel and moves to the right lower abdomen",
                  "loss of appetite", "a low fever"),
        test="an ultrasound or CT scan of the abdomen",
        treatment="surgical removal of the appendix",
        ages=(8, 35)),
    Condition(
        name="acute cholecystitis", system="digestive",
        definition="inflammation of the gallbladder, usually caused by a gallstone blocking "
                   "its outlet",
        symptoms=("constant pain under the right ribs", "fever",
                  "pain that started after a fatty meal"),
        test="an ultrasound of the abdomen",
        treatment="intravenous antibiotics and early removal of the gallbladder by keyhole "
                  "surgery",
        ages=(35, 75), sex="female"),
    Condition(
        name="acute pancreatitis", system="digestive",
        definition="a sudden inflammation of the pancreas, most often caused by gallstones or "
                   "alcohol",
        symptoms=("severe upper abdominal pain that goes through to the back",
                  "repeated vomiting", "a tender upper abdomen"),
        test="a blood lipase level at least three times the upper limit of normal",
        treatment="intravenous fluids, pain relief and close monitoring",
        ages=(30, 75)),
    Condition(
        name="irritable bowel syndrome", system="digestive",
        definition="a long-term disorder of gut function with no visible damage to the bowel",
        symptoms=("abdominal pain that eases after opening the bowels", "bloating",
                  "bouts of diarrhoea alternating with constipation"),
        test="clinical diagnosis after normal blood tests and a normal faecal calprotectin",
        treatment="dietary changes and an antispasmodic such as mebeverine",
        ages=(18, 50)),
    Condition(
        name="Crohn's disease", system="digestive",
        definition="a long-term inflammatory bowel disease that can affect any part of the gut "
                   "in patches",
        symptoms=("diarrhoea for several weeks", "cramping abdominal pain", "weight loss"),
        test="colonoscopy with biopsies",
        treatment="a course of corticosteroids to bring a flare under control",
        ages=(15, 40)),
    Condition(
        name="ulcerative colitis", system="digestive",
        definition="a long-term inflammatory bowel disease that affects the lining of the colon "
                   "and rectum",
        symptoms=("bloody diarrhoea", "an urgent need to open the bowels",
                  "cramping lower abdominal pain"),
        test="colonoscopy with biopsies",
        treatment="an aminosalicylate such as mesalazine",
        ages=(15, 45)),
    Condition(
        name="coeliac disease", system="digestive",
        definition="an immune reaction to gluten that damages the lining of the small bowel",
        symptoms=("long-standing diarrhoea", "bloating", "iron deficiency anaemia"),
        test="a blood test for tissue transglutaminase antibodies, confirmed by duodenal biopsy",
        treatment="a strict lifelong gluten-free diet",
        ages=(10, 50)),
    Condition(
        name="viral gastroenteritis", system="digestive",
        definition="a short infection of the gut caused by viruses such as norovirus",
        symptoms=("watery diarrhoea", "vomiting", "mild stomach cramps"),
        test="clinical diagnosis from the history and examination",
        treatment="oral rehydration solution",
        ages=(1, 80)),
    Condition(
        name="hepatitis A", system="digestive",
        definition="a short-lived viral infection of the liver spread by contaminated food or water",
        symptoms=("yellowing of the skin and eyes", "dark urine", "tiredness and nausea"),
        test="IgM antibodies to hepatitis A virus in the blood",
        treatment="supportive care, since the infection clears by itself",
        ages=(10, 50)),
    Condition(
        name="liver cirrhosis", system="digestive",
        definition="scarring of the whole liver after years of damage, often from alcohol or "
                   "viral hepatitis",
        symptoms=("a swollen abdomen full of fluid", "yellowing of the skin", "easy bruising"),
        test="liver blood tests with ultrasound elastography of the liver",
        treatment="treating the cause, such as stopping alcohol completely",
        ages=(40, 75)),
    Condition(
        name="colorectal cancer", system="digestive",
        definition="a malignant tumour of the colon or rectum",
        symptoms=("a lasting change in bowel habit", "blood mixed with the stool",
                  "iron deficiency anaemia"),
        test="colonoscopy with biopsy",
        treatment="surgical removal of the affected part of the bowel",
        ages=(55, 85)),
    Condition(
        name="acute diverticulitis", system="digestive",
        definition="inflammation of small pouches in the wall of the colon",
        symptoms=("pain in the left lower abdomen", "fever", "tenderness in the left lower "
                  "abdomen"),
        test="a CT scan of the abdomen",
        treatment="pain relief and clear fluids, with antibiotics when the illness is more severe",
        ages=(50, 85)),
    Condition(
        name="haemorrhoidal disease", system="digestive",
        definition="swelling of the blood vessels in and around the anus, known as piles",
        symptoms=("painless bright red blood on the toilet paper", "anal itching",
                  "a soft lump at the anus"),
        test="examination of the anus with proctoscopy",
        treatment="a high-fibre diet with plenty of fluids",
        ages=(25, 70)),
    # -- endocrine --------------------------------------------------------------------------
    Condition(
        name="type 1 diabetes", system="endocrine",
        definition="a condition in which the immune system destroys the insulin-making cells of "
                   "the pancreas",
        symptoms=("great thirst", "passing large amounts of urine", "weight loss over a few weeks"),
        test="a raised blood glucose with diabetes autoantibodies",
        treatment="lifelong insulin injections",
        ages=(5, 25)),
    Condition(
        name="type 2 diabetes", system="endocrine",
        definition="a long-term condition in which the body resists insulin and blood glucose "
                   "stays high",
        symptoms=("thirst", "passing urine often", "tiredness"),
        test="an HbA1c of 48 mmol/mol or more",
        treatment="diet, exercise and metformin",
        ages=(40, 80)),
    Condition(
        name="diabetic ketoacidosis", system="endocrine",
        definition="a dangerous complication of diabetes in which a lack of insulin makes the "
                   "blood acidic with ketones",
        symptoms=("vomiting", "abdominal pain", "deep rapid breathing"),
        test="blood glucose, blood ketones and a blood gas showing acidosis",
        treatment="intravenous fluids and an intravenous insulin infusion",
        ages=(10, 30)),
    Condition(
        name="hypothyroidism", system="endocrine",
        definition="an underactive thyroid gland that makes too little thyroid hormone",
        symptoms=("tiredness", "weight gain", "feeling cold all the time"),
        test="a raised thyroid-stimulating hormone level",
        treatment="daily levothyroxine tablets",
        ages=(30, 70), sex="female"),
    Condition(
        name="Graves' disease", system="endocrine",
        definition="an autoimmune disease that makes the thyroid gland overactive",
        symptoms=("weight loss despite a good appetite", "feeling hot and sweaty",
                  "bulging eyes"),
        test="a suppressed thyroid-stimulating hormone with a high free thyroxine",
        treatment="an antithyroid drug such as carbimazole, with a beta blocker for symptoms",
        ages=(20, 50), sex="female"),
    Condition(
        name="Cushing's syndrome", system="endocrine",
        definition="a condition caused by too much cortisol in the body over a long time",
        symptoms=("weight gain around the trunk", "purple stretch marks on the abdomen",
                  "a round face"),
        test="an overnight dexamethasone suppression test",
        treatment="reducing any steroid medicine, or surgical removal of a tumour that drives "
                  "the cortisol excess",
        ages=(25, 50)),
    Condition(
        name="Addison's disease", system="endocrine",
        definition="failure of the adrenal glands to make enough cortisol and aldosterone",
        symptoms=("tiredness and weakness", "dizziness on standing", "darkening of the skin"),
        test="a short synacthen test showing a poor cortisol response",
        treatment="lifelong hydrocortisone and fludrocortisone",
        ages=(25, 55)),
    # -- urinary ----------------------------------------------------------------------------
    Condition(
        name="cystitis", system="urinary",
        definition="a bacterial infection of the bladder",
        symptoms=("burning when passing urine", "passing urine very often",
                  "discomfort above the pubic bone"),
        test="a urine dipstick with urine culture",
        treatment="a short course of nitrofurantoin",
        ages=(18, 60), sex="female"),
    Condition(
        name="pyelonephritis", system="urinary",
        definition="a bacterial infection of the kidney",
        symptoms=("high fever with shivers", "pain in the loin", "nausea and vomiting"),
        test="urine culture with blood tests",
        treatment="an antibiotic that reaches the kidney, such as a cephalosporin",
        ages=(18, 60), sex="female"),
    Condition(
        name="kidney stone disease", system="urinary",
        definition="the forming of hard mineral stones in the kidney that can block the ureter",
        symptoms=("severe colicky pain from the loin to the groin", "blood in the urine",
                  "restlessness with the pain"),
        test="a non-contrast CT scan of the kidneys, ureters and bladder",
        treatment="pain relief with an anti-inflammatory drug such as diclofenac",
        ages=(25, 60)),
    Condition(
        name="chronic kidney disease", system="urinary",
        definition="a slow loss of kidney function over months or years",
        symptoms=("tiredness", "swelling of the legs", "itchy skin"),
        test="the estimated glomerular filtration rate and urine albumin measured twice",
        treatment="blood pressure control with an ACE inhibitor",
        ages=(50, 85)),
    Condition(
        name="acute kidney injury", system="urinary",
        definition="a sudden fall in kidney function over hours or days",
        symptoms=("passing much less urine than usual", "swelling from fluid build-up",
                  "confusion"),
        test="a rising serum creatinine",
        treatment="treating the cause and careful fluid balance",
        ages=(60, 90)),
    Condition(
        name="benign prostatic hyperplasia", system="urinary",
        definition="a non-cancerous enlargement of the prostate gland",
        symptoms=("a weak urine stream", "getting up at night to pass urine",
                  "difficulty starting to pass urine"),
        test="a digital rectal examination",
        treatment="an alpha blocker such as tamsulosin",
        ages=(55, 85), sex="male"),
    # -- nervous ----------------------------------------------------------------------------
    Condition(
        name="migraine", system="nervous",
        definition="a common disorder of recurrent, often one-sided, throbbing headaches",
        symptoms=("a throbbing one-sided headache", "nausea", "dislike of bright light"),
        test="clinical diagnosis from the history and a normal neurological examination",
        treatment="an anti-inflammatory painkiller or a triptan at the start of an attack",
        ages=(15, 45), sex="female"),
    Condition(
        name="tension-type headache", system="nervous",
        definition="a common headache felt as a tight band around the head",
        symptoms=("a pressing headache on both sides", "a feeling of a tight band around the "
                  "head", "no nausea or vomiting"),
        test="clinical diagnosis from the history and examination",
        treatment="simple painkillers such as paracetamol or ibuprofen",
        ages=(20, 60)),
    Condition(
        name="ischaemic stroke", system="nervous",
        definition="sudden brain damage caused by a blocked artery that cuts off blood supply "
                   "to part of the brain",
        symptoms=("sudden weakness of one side of the body", "a drooping face",
                  "slurred speech"),
        test="an urgent CT scan of the head",
        treatment="clot-busting thrombolysis with alteplase within four and a half hours",
        ages=(60, 90)),
    Condition(
        name="epilepsy", system="nervous",
        definition="a tendency to have repeated seizures caused by bursts of abnormal electrical "
                   "activity in the brain",
        symptoms=("repeated seizures", "episodes of jerking of the limbs",
                  "confusion after an episode"),
        test="an electroencephalogram",
        treatment="an antiseizure medicine such as levetiracetam",
        ages=(5, 40)),
    Condition(
        name="Parkinson's disease", system="nervous",
        definition="a slowly progressive brain disease caused by the loss of dopamine-making "
                   "nerve cells",
        symptoms=("a tremor of one hand at rest", "slow movements", "stiff limbs"),
        test="clinical diagnosis from the examination",
        treatment="levodopa",
        ages=(60, 85)),
    Condition(
        name="Alzheimer's disease", system="nervous",
        definition="the most common cause of dementia, with a gradual loss of brain cells",
        symptoms=("forgetting recent events", "getting lost in familiar places",
                  "trouble with everyday tasks"),
        test="a memory assessment with brain imaging to exclude other causes",
        treatment="a cholinesterase inhibitor such as donepezil",
        ages=(65, 95)),
    Condition(
        name="multiple sclerosis", system="nervous",
        definition="an autoimmune disease that damages the insulation around nerves in the brain "
                   "and spinal cord",
        symptoms=("painful blurred vision in one eye", "numbness in the legs",
                  "unusual tiredness"),
        test="an MRI scan of the brain and spinal cord",
        treatment="high-dose corticosteroids for relapses and a disease-modifying therapy",
        ages=(20, 40), sex="female"),
    Condition(
        name="bacterial meningitis", system="nervous",
        definition="a bacterial infection of the membranes that cover the brain and spinal cord",
        symptoms=("fever", "a stiff neck", "a severe headache with dislike of light"),
        test="a lumbar puncture",
        treatment="immediate intravenous antibiotics such as ceftriaxone",
        ages=(15, 30)),
    Condition(
        name="Bell's palsy", system="nervous",
        definition="a sudden weakness of the facial nerve on one side without a known cause",
        symptoms=("drooping of one side of the face", "being unable to close one eye",
                  "weakness that includes the forehead"),
        test="clinical diagnosis after excluding a stroke",
        treatment="oral prednisolone started within three days",
        ages=(20, 60)),
    Condition(
        name="carpal tunnel syndrome", system="nervous",
        definition="pressure on the median nerve as it passes through the wrist",
        symptoms=("tingling in the thumb and first two fingers", "night-time tingling that "
                  "disturbs sleep", "a weak grip"),
        test="nerve conduction studies",
        treatment="a wrist splint worn at night",
        ages=(40, 60), sex="female"),
    # -- musculoskeletal --------------------------------------------------------------------
    Condition(
        name="osteoarthritis", system="musculoskeletal",
        definition="wear and repair of the joint cartilage that makes joints painful and stiff",
        symptoms=("knee pain that is worse after use", "stiffness lasting less than half an hour "
                  "in the morning", "a creaking joint"),
        test="an X-ray of the joint",
        treatment="exercise, weight loss and paracetamol or a topical anti-inflammatory gel",
        ages=(55, 85)),
    Condition(
        name="rheumatoid arthritis", system="musculoskeletal",
        definition="an autoimmune disease that inflames the lining of many joints",
        symptoms=("painful swollen small joints of both hands", "morning stiffness lasting over "
                  "an hour", "tiredness"),
        test="anti-cyclic citrullinated peptide antibodies in the blood",
        treatment="methotrexate",
        ages=(30, 60), sex="female"),
    Condition(
        name="gout", system="musculoskeletal",
        definition="a painful arthritis caused by crystals of uric acid in a joint",
        symptoms=("a sudden very painful big toe", "a red, hot and swollen joint",
                  "an attack that began overnight"),
        test="needle-shaped urate crystals seen in fluid drawn from the joint",
        treatment="an anti-inflammatory drug or colchicine for the attack",
        ages=(40, 75), sex="male"),
    Condition(
        name="osteoporosis", system="musculoskeletal",
        definition="thinning of the bones that makes them break easily",
        symptoms=("a broken wrist after a minor fall", "loss of height",
                  "sudden back pain from a spinal fracture"),
        test="a DEXA bone density scan",
        treatment="a bisphosphonate such as alendronic acid with calcium and vitamin D",
        ages=(60, 90), sex="female"),
    Condition(
        name="ankylosing spondylitis", system="musculoskeletal",
        definition="a long-term inflammatory arthritis of the spine and the pelvic joints",
        symptoms=("low back pain that is worse in the morning", "back stiffness that improves "
                  "with exercise", "pain in the buttocks"),
        test="an MRI scan of the sacroiliac joints",
        treatment="exercise and an anti-inflammatory drug such as naproxen",
        ages=(18, 35), sex="male"),
    Condition(
        name="systemic lupus erythematosus", system="musculoskeletal",
        definition="an autoimmune disease that can inflame the joints, skin, kidneys and other "
                   "organs",
        symptoms=("painful joints", "a red rash across the cheeks and nose", "tiredness"),
        test="antinuclear and anti-double-stranded DNA antibodies",
        treatment="hydroxychloroquine",
        ages=(20, 45), sex="female"),
    Condition(
        name="polymyalgia rheumatica", system="musculoskeletal",
        definition="an inflammatory condition that causes pain and stiffness of the shoulders "
                   "and hips in older people",
        symptoms=("stiffness of both shoulders in the morning", "aching hips",
                  "difficulty getting out of bed"),
        test="raised inflammatory markers such as the ESR and CRP",
        treatment="low-dose prednisolone",
        ages=(60, 85)),
    # -- blood ------------------------------------------------------------------------------
    Condition(
        name="iron deficiency anaemia", system="blood",
        definition="a low haemoglobin caused by too little iron, often from blood loss",
        symptoms=("tiredness", "pale skin", "breathlessness on effort"),
        test="a low serum ferritin",
        treatment="oral iron tablets and a search for the cause of the iron loss",
        ages=(18, 80), sex="female"),
    Condition(
        name="vitamin B12 deficiency", system="blood",
        definition="a lack of vitamin B12 that causes anaemia and nerve damage",
        symptoms=("tiredness", "pins and needles in the feet", "a sore red tongue"),
        test="a low serum vitamin B12 with large red blood cells",
        treatment="vitamin B12 injections",
        ages=(50, 85)),
    Condition(
        name="sickle cell disease", system="blood",
        definition="an inherited disorder in which red blood cells become stiff and sickle "
                   "shaped",
        symptoms=("sudden episodes of severe bone pain", "tiredness from anaemia",
                  "yellowing of the eyes"),
        test="haemoglobin electrophoresis",
        treatment="pain relief and fluids for crises, with hydroxycarbamide to prevent them",
        ages=(2, 30)),
    # -- infectious -------------------------------------------------------------------------
    Condition(
        name="streptococcal pharyngitis", system="infectious",
        definition="a bacterial throat infection caused by group A streptococcus",
        symptoms=("a sore throat with fever", "swollen tonsils covered in pus",
                  "tender glands in the neck"),
        test="a rapid antigen test or culture of a throat swab",
        treatment="penicillin V for ten days",
        ages=(5, 15)),
    Condition(
        name="cellulitis", system="infectious",
        definition="a bacterial infection of the deeper layers of the skin",
        symptoms=("a red, hot and swollen area of skin", "pain in the affected area", "fever"),
        test="clinical diagnosis from the appearance of the skin",
        treatment="an oral antibiotic such as flucloxacillin",
        ages=(20, 80)),
    Condition(
        name="Lyme disease", system="infectious",
        definition="an infection with Borrelia bacteria passed on by tick bites",
        symptoms=("a slowly expanding red ring-shaped rash", "fever and tiredness",
                  "a recent tick bite"),
        test="clinical diagnosis from the typical rash, with blood antibody tests later on",
        treatment="doxycycline",
        ages=(10, 70)),
    Condition(
        name="malaria", system="infectious",
        definition="a parasitic infection of red blood cells spread by mosquito bites in the "
                   "tropics",
        symptoms=("fever with shaking chills", "heavy sweats", "recent travel to a tropical area"),
        test="thick and thin blood films",
        treatment="artemisinin-based combination therapy",
        ages=(15, 65)),
    Condition(
        name="HIV infection", system="infectious",
        definition="a long-term viral infection that slowly destroys the CD4 cells of the immune "
                   "system",
        symptoms=("a flu-like illness a few weeks after exposure", "swollen lymph glands",
                  "weight loss"),
        test="a combined HIV antigen and antibody blood test",
        treatment="lifelong combination antiretroviral therapy",
        ages=(18, 50)),
    Condition(
        name="chickenpox", system="infectious",
        definition="a contagious childhood infection caused by the varicella-zoster virus",
        symptoms=("an itchy rash of small blisters", "fever", "spots that crop up over several "
                  "days"),
        test="clinical diagnosis from the appearance of the rash",
        treatment="calamine lotion, fluids and paracetamol",
        ages=(2, 10)),
    Condition(
        name="shingles", system="infectious",
        definition="reactivation of the chickenpox virus in a single nerve",
        symptoms=("a band of painful blisters on one side of the body", "burning pain before "
                  "the rash", "a rash that stops at the midline"),
        test="clinical diagnosis from the appearance of the rash",
        treatment="oral aciclovir started within three days of the rash",
        ages=(50, 85)),
    Condition(
        name="sepsis", system="infectious",
        definition="a life-threatening reaction to an infection that harms the body's own organs",
        symptoms=("fever or a very low temperature", "a fast heart rate and low blood pressure",
                  "new confusion"),
        test="blood cultures and a blood lactate level",
        treatment="intravenous antibiotics within one hour and intravenous fluids",
        ages=(50, 90)),
    Condition(
        name="infectious mononucleosis", system="infectious",
        definition="an infection with the Epstein-Barr virus, also called glandular fever",
        symptoms=("a severe sore throat", "swollen glands in the neck", "extreme tiredness"),
        test="a heterophile antibody test",
        treatment="rest, fluids and avoiding contact sports while the spleen is enlarged",
        ages=(15, 25)),
    # -- skin -------------------------------------------------------------------------------
    Condition(
        name="atopic eczema", system="skin",
        definition="a long-term itchy inflammation of dry skin that often starts in childhood",
        symptoms=("itchy dry skin", "a red rash in the skin creases of the elbows and knees",
                  "scratching at night"),
        test="clinical diagnosis from the appearance and history of the rash",
        treatment="regular emollients with a topical corticosteroid for flares",
        ages=(1, 12)),
    Condition(
        name="psoriasis", system="skin",
        definition="a long-term immune skin disease with raised scaly patches",
        symptoms=("well-defined red plaques", "silvery scale on the elbows and knees",
                  "pitted nails"),
        test="clinical diagnosis from the appearance of the skin",
        treatment="a topical corticosteroid with a vitamin D preparation",
        ages=(20, 50)),
    Condition(
        name="acne vulgaris", system="skin",
        definition="inflammation of the hair follicles and oil glands of the skin",
        symptoms=("blackheads and whiteheads", "red spots and pustules on the face",
                  "greasy skin"),
        test="clinical diagnosis from the appearance of the skin",
        treatment="a topical retinoid combined with benzoyl peroxide",
        ages=(13, 20)),
    Condition(
        name="scabies", system="skin",
        definition="an infestation of the skin by a tiny mite that burrows under the surface",
        symptoms=("intense itching that is worse at night", "small burrows between the fingers",
                  "family members who also itch"),
        test="clinical diagnosis, sometimes confirmed by finding the mite in a skin scraping",
        treatment="permethrin cream for the patient and the whole household",
        ages=(5, 60)),
    Condition(
        name="impetigo", system="skin",
        definition="a contagious superficial skin infection, mostly in children",
        symptoms=("sores with golden crusts", "spots around the nose and mouth",
                  "mild itching"),
        test="clinical diagnosis from the appearance of the sores",
        treatment="a topical antibiotic cream such as fusidic acid",
        ages=(2, 8)),
    Condition(
        name="melanoma", system="skin",
        definition="a malignant tumour of the pigment cells of the skin",
        symptoms=("a mole that is changing in size", "an irregular border",
                  "several colours within one spot"),
        test="complete excision biopsy of the lesion",
        treatment="wide local excision of the tumour",
        ages=(30, 80)),
    # -- reproductive -----------------------------------------------------------------------
    Condition(
        name="pre-eclampsia", system="reproductive",
        definition="new high blood pressure with protein in the urine after twenty weeks of "
                   "pregnancy",
        symptoms=("high blood pressure in pregnancy", "a severe headache",
                  "swelling of the face and hands"),
        test="blood pressure measurement with a urine protein test",
        treatment="an antihypertensive such as labetalol, with planned delivery of the baby",
        ages=(20, 40), sex="female"),
    Condition(
        name="gestational diabetes", system="reproductive",
        definition="high blood glucose that first appears during pregnancy",
        symptoms=("glucose in the urine at an antenatal visit", "increased thirst",
                  "a baby measuring large for dates"),
        test="an oral glucose tolerance test at 24 to 28 weeks of pregnancy",
        treatment="diet and exercise, adding metformin or insulin if glucose stays high",
        ages=(25, 42), sex="female"),
    Condition(
        name="ectopic pregnancy", system="reproductive",
        definition="a pregnancy that implants outside the womb, usually in a fallopian tube",
        symptoms=("one-sided lower abdominal pain", "light vaginal bleeding",
                  "a missed period"),
        test="a transvaginal ultrasound with a blood hCG level",
        treatment="methotrexate or keyhole surgery to remove the pregnancy",
        ages=(20, 40), sex="female"),
    Condition(
        name="polycystic ovary syndrome", system="reproductive",
        definition="a common hormonal condition with irregular ovulation and raised male "
                   "hormones",
        symptoms=("irregular periods", "excess hair on the face and body", "acne"),
        test="raised blood androgens with a pelvic ultrasound of the ovaries",
        treatment="weight loss and the combined oral contraceptive pill",
        ages=(16, 35), sex="female"),
    Condition(
        name="endometriosis", system="reproductive",
        definition="growth of tissue like the lining of the womb outside the womb",
        symptoms=("very painful periods", "pelvic pain between periods", "pain during sex"),
        test="laparoscopy",
        treatment="anti-inflammatory painkillers and hormonal treatment",
        ages=(20, 40), sex="female"),
    Condition(
        name="bacterial vaginosis", system="reproductive",
        definition="an overgrowth of anaerobic bacteria in the vagina",
        symptoms=("a thin grey discharge", "a fishy smell", "no itching or soreness"),
        test="a vaginal pH above 4.5 with clue cells on microscopy",
        treatment="metronidazole",
        ages=(18, 45), sex="female"),
    Condition(
        name="breast cancer", system="reproductive",
        definition="a malignant tumour of the breast tissue",
        symptoms=("a painless hard breast lump", "dimpling of the breast skin",
                  "a newly inverted nipple"),
        test="a mammogram with a core needle biopsy",
        treatment="surgery to remove the tumour",
        ages=(45, 80), sex="female"),
    Condition(
        name="chlamydia infection", system="reproductive",
        definition="a common sexually transmitted bacterial infection that often causes no "
                   "symptoms",
        symptoms=("an unusual genital discharge", "pain when passing urine",
                  "lower abdominal discomfort"),
        test="a nucleic acid amplification test on a swab or urine sample",
        treatment="a week of doxycycline",
        ages=(16, 30)),
    # -- eye and ear ------------------------------------------------------------------------
    Condition(
        name="acute angle-closure glaucoma", system="eye and ear",
        definition="a sudden rise of pressure in the eye when the drainage angle is blocked",
        symptoms=("a sudden painful red eye", "blurred vision with haloes around lights",
                  "headache and vomiting"),
        test="measurement of the eye pressure",
        treatment="urgent pressure-lowering eye drops and acetazolamide, followed by laser "
                  "iridotomy",
        ages=(55, 85)),
    Condition(
        name="cataract", system="eye and ear",
        definition="clouding of the lens of the eye",
        symptoms=("slowly worsening blurred vision", "glare from headlights at night",
                  "colours that look faded"),
        test="slit-lamp examination of the eye",
        treatment="cataract surgery with an artificial lens",
        ages=(65, 90)),
    Condition(
        name="bacterial conjunctivitis", system="eye and ear",
        definition="a bacterial infection of the thin membrane that covers the white of the eye",
        symptoms=("a red eye", "sticky yellow discharge", "eyelids stuck together in the morning"),
        test="clinical diagnosis from the appearance of the eye",
        treatment="chloramphenicol eye drops",
        ages=(2, 40)),
    Condition(
        name="acute otitis media", system="eye and ear",
        definition="an infection of the middle ear behind the eardrum",
        symptoms=("ear pain", "fever", "a red, bulging eardrum"),
        test="examination of the eardrum with an otoscope",
        treatment="pain relief, with amoxicillin if symptoms last beyond three days",
        ages=(1, 6)),
    # -- mental health ----------------------------------------------------------------------
    Condition(
        name="major depressive disorder", system="mental health",
        definition="a persistent low mood with loss of interest that lasts at least two weeks",
        symptoms=("low mood most of the day", "loss of interest in usual activities",
                  "early morning waking"),
        test="a clinical interview, supported by a questionnaire such as the PHQ-9",
        treatment="psychological therapy and an SSRI antidepressant such as sertraline",
        ages=(18, 65)),
    Condition(
        name="generalised anxiety disorder", system="mental health",
        definition="excessive worry about many everyday things for at least six months",
        symptoms=("constant worry that is hard to control", "restlessness",
                  "poor sleep and poor concentration"),
        test="a clinical interview, supported by a questionnaire such as the GAD-7",
        treatment="cognitive behavioural therapy and an SSRI such as sertraline",
        ages=(18, 60)),
    Condition(
        name="bipolar disorder", system="mental health",
        definition="a mood disorder with episodes of mania and episodes of depression",
        symptoms=("periods of very high mood", "little need for sleep during highs",
                  "spells of deep depression"),
        test="a clinical interview with a history of mood episodes",
        treatment="lithium as a mood stabiliser",
        ages=(18, 40)),
    Condition(
        name="schizophrenia", system="mental health",
        definition="a severe mental illness that changes how a person perceives reality",
        symptoms=("hearing voices", "fixed false beliefs", "muddled thinking and speech"),
        test="a clinical interview after excluding drugs and physical illness",
        treatment="an antipsychotic medicine with psychosocial support",
        ages=(18, 30)),
    Condition(
        name="alcohol withdrawal", system="mental health",
        definition="a group of symptoms that follows stopping heavy long-term drinking",
        symptoms=("shaking hands", "sweating and anxiety", "symptoms starting a day after the "
                  "last drink"),
        test="clinical diagnosis, scored with a withdrawal scale such as CIWA-Ar",
        treatment="a reducing course of a benzodiazepine such as chlordiazepoxide, with thiamine",
        ages=(30, 65), sex="male"),
    # -- immune and childhood ----------------------------------------------------------------
    Condition(
        name="anaphylaxis", system="immune",
        definition="a severe, life-threatening allergic reaction that develops within minutes",
        symptoms=("swelling of the lips and tongue", "wheeze and breathlessness",
                  "a widespread itchy rash with low blood pressure"),
        test="clinical diagnosis, with mast cell tryptase measured afterwards",
        treatment="intramuscular adrenaline",
        ages=(5, 60)),
    Condition(
        name="allergic rhinitis", system="immune",
        definition="an allergic inflammation of the nose, often caused by pollen or house dust "
                   "mites",
        symptoms=("sneezing", "a blocked and runny nose", "itchy watery eyes"),
        test="clinical diagnosis, with skin prick testing when the trigger is unclear",
        treatment="a non-sedating antihistamine or a steroid nasal spray",
        ages=(8, 40)),
    Condition(
        name="bronchiolitis", system="respiratory",
        definition="a viral infection of the small airways in babies, usually caused by "
                   "respiratory syncytial virus",
        symptoms=("a cough and runny nose", "wheeze and fast breathing",
                  "difficulty feeding"),
        test="clinical diagnosis from the history and examination",
        treatment="supportive care with fluids and oxygen if needed",
        ages=(0, 0)),
    Condition(
        name="croup", system="respiratory",
        definition="a viral infection of the voice box and windpipe in young children",
        symptoms=("a barking cough", "a harsh noise on breathing in", "a hoarse voice"),
        test="clinical diagnosis from the history and examination",
        treatment="a single dose of oral dexamethasone",
        ages=(1, 3)),
)


def validate(conditions=CONDITIONS) -> None:
    """Raises ValueError naming the condition and field that break the conventions above."""
    seen = set()
    for c in conditions:
        if c.name.lower() in seen:
            raise ValueError(f"knowledge.py: condition {c.name!r} appears twice")
        seen.add(c.name.lower())
        if c.system not in BODY_SYSTEMS:
            raise ValueError(f"knowledge.py: {c.name!r}: unknown system {c.system!r}")
        if c.sex not in SEXES:
            raise ValueError(f"knowledge.py: {c.name!r}: sex must be one of {SEXES}")
        if len(c.symptoms) != 3:
            raise ValueError(f"knowledge.py: {c.name!r}: needs exactly 3 symptoms")
        lo, hi = c.ages
        if not 0 <= lo <= hi <= 100:
            raise ValueError(f"knowledge.py: {c.name!r}: bad age range {c.ages}")
        for text in (c.definition, c.test, c.treatment, *c.symptoms):
            if not text or text != text.strip() or text.endswith(".") or not text.isascii():
                raise ValueError(f"knowledge.py: {c.name!r}: {text!r} must be a non-empty ASCII "
                                 "phrase without surrounding spaces or a final period")
