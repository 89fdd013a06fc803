"""Any picture or array -> the normalized 28x28 input the networks were trained on (shared by predict and serve).

One module per step: `decode` (image bytes -> grey levels), `ink` (the ink on the paper, as marks),
`digits` (one digit as MNIST's were made), `clothes` (one item as Fashion-MNIST's were made),
`numbers` (a number's digits, touching ones also cut apart) and `inputs` (what a file or its bytes
hold -> inputs, a picture normalized by the model's data set: `inputs.normalize_picture`).

numpy and Pillow only: `lenet predict --model x.onnx` starts in about 0.3 s, and importing
scipy.ndimage alone would add about 0.25 s to that.
"""
